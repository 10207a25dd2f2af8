-- Attachments: files uploaded by a user, then sent with one message or used
-- as the uploader's avatar. The bytes live in the attachment storage under
-- storage_key (server-made, never the client's file name); the row says who
-- may read them. A message keeps a copy of its attachments' descriptions
-- (JSON) so that history reads stay one query.
-- +goose Up
CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    uploader_id     TEXT NOT NULL REFERENCES users (id),
    storage_key     TEXT NOT NULL,
    thumb_key       TEXT,
    name            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    width           INTEGER NOT NULL DEFAULT 0,
    height          INTEGER NOT NULL DEFAULT 0,
    message_id      TEXT,
    conversation_id TEXT,
    avatar_of       TEXT,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX attachments_message ON attachments (message_id);
-- The sweeper's two questions: what is deleted, and what was never used.
CREATE INDEX attachments_deleted ON attachments (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX attachments_unused ON attachments (created_at) WHERE message_id IS NULL AND avatar_of IS NULL;
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_id TEXT;

-- +goose Down
ALTER TABLE users DROP COLUMN avatar_id;
ALTER TABLE messages DROP COLUMN attachments;
DROP TABLE attachments;
