-- The relay publishes the stored envelope as is; the event type (for the
-- subject) sits beside it so the relay need not decode the JSON. Rows written
-- before this migration have NULL here and are decoded instead.
-- +goose Up
ALTER TABLE outbox ADD COLUMN event_type TEXT;

-- +goose Down
ALTER TABLE outbox DROP COLUMN event_type;
