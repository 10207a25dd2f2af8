-- Account lifecycle: a session remembers the client that opened it and when
-- it was last used (login or token refresh), so its owner can recognise and
-- revoke it; a deleted account keeps its row (messages still name their
-- sender) with deleted_at set.
-- +goose Up
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
ALTER TABLE users ADD COLUMN deleted_at INTEGER;

-- +goose Down
ALTER TABLE users DROP COLUMN deleted_at;
ALTER TABLE sessions DROP COLUMN last_used_at;
ALTER TABLE sessions DROP COLUMN user_agent;
