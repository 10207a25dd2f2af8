-- A direct conversation whose other member deleted their account is closed:
-- still readable, no new messages. The flag sits on the conversation row the
-- send path reads and locks anyway, so checking it costs nothing per message.
-- +goose Up
ALTER TABLE conversations ADD COLUMN closed_at INTEGER;

-- +goose Down
ALTER TABLE conversations DROP COLUMN closed_at;
