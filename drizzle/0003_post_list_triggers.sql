-- An author's newest-posts list is versioned by post_list_versions, bumped once per change that can
-- alter the list (a post inserted, deleted, re-dated or moved to another author). Its outbox event
-- carries that version, so a tombstone fences every list read before the change — including a
-- deletion or re-dating, which a list's newest id alone could not express.
CREATE OR REPLACE FUNCTION cacheside_bump_post_list(author integer) RETURNS bigint AS $$
  INSERT INTO post_list_versions AS l (author_id, version) VALUES (author, 1)
  ON CONFLICT (author_id) DO UPDATE SET version = l.version + 1
  RETURNING l.version;
$$ LANGUAGE sql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION cacheside_outbox_post() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('post', OLD.id, OLD.version + 1);
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userPosts', OLD.author_id, cacheside_bump_post_list(OLD.author_id));
    RETURN OLD;
  END IF;
  INSERT INTO outbox (entity, entity_id, version) VALUES ('post', NEW.id, NEW.version);
  IF TG_OP = 'INSERT' THEN
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userPosts', NEW.author_id, cacheside_bump_post_list(NEW.author_id));
  ELSIF NEW.author_id <> OLD.author_id THEN
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userPosts', OLD.author_id, cacheside_bump_post_list(OLD.author_id));
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userPosts', NEW.author_id, cacheside_bump_post_list(NEW.author_id));
  ELSIF NEW.created_at <> OLD.created_at THEN
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userPosts', NEW.author_id, cacheside_bump_post_list(NEW.author_id));
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
