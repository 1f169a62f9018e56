-- The user directory (which user ids exist) is versioned by user_directory_version, bumped once per
-- inserted or deleted user. Its outbox event carries that version, so the relay's tombstone fences
-- every page answer read before the change: a stored `userPage` answer names the directory version
-- it read and stops validating when it moves (docs/consistency.md, "The response tier"). Id 1 is
-- USER_DIRECTORY_ID (src/cache/entities/keys.ts). The row is one hot spot: concurrent inserts of
-- users serialise on it until they commit — users are only created outside the API, in bulk or rarely.
CREATE OR REPLACE FUNCTION cacheside_bump_user_directory() RETURNS bigint AS $$
  INSERT INTO user_directory_version AS d (id, version) VALUES (1, 1)
  ON CONFLICT (id) DO UPDATE SET version = d.version + 1
  RETURNING d.version;
$$ LANGUAGE sql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION cacheside_outbox_user() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO outbox (entity, entity_id, version) VALUES ('user', OLD.id, OLD.version + 1);
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userDirectory', 1, cacheside_bump_user_directory());
    RETURN OLD;
  END IF;
  INSERT INTO outbox (entity, entity_id, version) VALUES ('user', NEW.id, NEW.version);
  IF TG_OP = 'INSERT' THEN
    INSERT INTO outbox (entity, entity_id, version)
      VALUES ('userDirectory', 1, cacheside_bump_user_directory());
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
