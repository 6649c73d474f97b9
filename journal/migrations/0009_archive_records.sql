-- The archive of the other domains (docs/sinks.md): one row per hold (its seats' sale),
-- booking and auction lot, with its state, written by the archive sink from the outbox in
-- the same transaction as its progress, like archive_coupons.
--   kind hold:    active -> sold | released | lapsed
--   kind booking: booked -> cancelled
--   kind lot:     open -> sold | unsold (user_id becomes the winner on a sale)
-- detail: the record's facts as JSON (seats and price, slot and party, price and reason).
CREATE TABLE archive_records (
    resource_id TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    state_at    TEXT NOT NULL,
    outcome_id  TEXT NOT NULL,
    PRIMARY KEY (resource_id, record_id)
) WITHOUT ROWID;
CREATE INDEX archive_records_by_state ON archive_records (kind, state, resource_id);
