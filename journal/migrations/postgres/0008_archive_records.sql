-- The same table as SQLite's (../0009_archive_records.sql): one row per hold, booking and
-- auction lot, with its state, written by the archive sink from the outbox.
CREATE TABLE archive_records (
    resource_id text        NOT NULL,
    record_id   text        NOT NULL,
    kind        text        NOT NULL,
    user_id     text        NOT NULL,
    state       text        NOT NULL,
    detail      jsonb       NOT NULL,
    state_at    timestamptz NOT NULL,
    outcome_id  text        NOT NULL,
    PRIMARY KEY (resource_id, record_id)
);
CREATE INDEX archive_records_by_state ON archive_records (kind, state, resource_id);
