-- Who may see a user's presence and last seen: 'everybody', 'contacts' (the
-- users they have written to) or 'nobody'. "Has written to" is read from the
-- messages, hence the index by sender.
-- +goose Up
ALTER TABLE users ADD COLUMN presence_visibility TEXT NOT NULL DEFAULT 'contacts'
    CHECK (presence_visibility IN ('everybody', 'contacts', 'nobody'));
CREATE INDEX messages_sender ON messages (sender_id, conversation_id);

-- +goose Down
DROP INDEX messages_sender;
ALTER TABLE users DROP COLUMN presence_visibility;
