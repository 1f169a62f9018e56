-- Every committed change to a cached table leaves an outbox row in the same transaction, whether it
-- came through the API or through plain SQL (admin fixes, backfills). The relay turns those rows into
-- versioned tombstones in Redis and invalidation events for every instance.

-- Versions only move forward: an UPDATE that does not raise `version` itself gets +1, so a change made
-- outside the API still outranks every cached copy of the old row.
CREATE OR REPLACE FUNCTION cacheside_bump_version() RETURNS trigger AS $$
BEGIN
  IF NEW.version <= OLD.version THEN
    NEW.version := OLD.version + 1;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER users_bump_version BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION cacheside_bump_version();
--> statement-breakpoint
CREATE TRIGGER profiles_bump_version BEFORE UPDATE ON profiles
  FOR EACH ROW EXECUTE FUNCTION cacheside_bump_version();
--> statement-breakpoint
CREATE TRIGGER posts_bump_version BEFORE UPDATE ON posts
  FOR EACH ROW EXECUTE FUNCTION cacheside_bump_version();
--> statement-breakpoint
-- Entity names match the cache's (src/cache/keys.ts). A deleted row's event carries version + 1 so its
-- tombstone outranks the last cached copy.
CREATE OR REPLACE FUNCTION cacheside_outbox_user() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('user', OLD.id, OLD.version + 1);
    RETURN OLD;
  END IF;
  INSERT INTO outbox (entity, entity_id, version) VALUES ('user', NEW.id, NEW.version);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION cacheside_outbox_profile() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('profile', OLD.user_id, OLD.version + 1);
    RETURN OLD;
  END IF;
  INSERT INTO outbox (entity, entity_id, version) VALUES ('profile', NEW.user_id, NEW.version);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
-- A post also changes its author's newest-post list, whose version is the newest post id it holds.
CREATE OR REPLACE FUNCTION cacheside_outbox_post() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('post', OLD.id, OLD.version + 1);
    INSERT INTO outbox (entity, entity_id, version) VALUES ('userPosts', OLD.author_id, OLD.id);
    RETURN OLD;
  END IF;
  INSERT INTO outbox (entity, entity_id, version) VALUES ('post', NEW.id, NEW.version);
  IF TG_OP = 'INSERT' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('userPosts', NEW.author_id, NEW.id);
  ELSIF NEW.author_id <> OLD.author_id OR NEW.created_at <> OLD.created_at THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('userPosts', OLD.author_id, NEW.id);
    INSERT INTO outbox (entity, entity_id, version) VALUES ('userPosts', NEW.author_id, NEW.id);
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER users_outbox AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION cacheside_outbox_user();
--> statement-breakpoint
CREATE TRIGGER profiles_outbox AFTER INSERT OR UPDATE OR DELETE ON profiles
  FOR EACH ROW EXECUTE FUNCTION cacheside_outbox_profile();
--> statement-breakpoint
CREATE TRIGGER posts_outbox AFTER INSERT OR UPDATE OR DELETE ON posts
  FOR EACH ROW EXECUTE FUNCTION cacheside_outbox_post();
