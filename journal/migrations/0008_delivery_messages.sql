-- One outcome may call for several messages (a cancellation tells its guest and every
-- waiting party it freed covers for; a bid tells the bidder it outbid): the delivery ledger
-- is keyed per message, (sink, partition, log_offset, message_index). Message 0 is the
-- outcome's first message, 1.. the further recipients in the decision's order. Every row
-- written before this migration was an outcome's only message: index 0, so nothing already
-- sent is sent again.
--
-- SQLite cannot change a primary key: the table is rebuilt, its rows copied, and the index
-- recreated.
CREATE TABLE deliveries_by_message (
    sink                TEXT    NOT NULL,
    partition           INTEGER NOT NULL,
    log_offset          INTEGER NOT NULL,
    message_index       INTEGER NOT NULL DEFAULT 0,
    state               TEXT    NOT NULL CHECK (state IN ('sending', 'sent', 'failed', 'queued')),
    attempts            INTEGER NOT NULL,
    last_error          TEXT,
    provider_message_id TEXT,
    first_attempt_at    TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    PRIMARY KEY (sink, partition, log_offset, message_index)
) WITHOUT ROWID;
INSERT INTO deliveries_by_message
    (sink, partition, log_offset, message_index, state, attempts, last_error,
     provider_message_id, first_attempt_at, updated_at)
SELECT sink, partition, log_offset, 0, state, attempts, last_error,
       provider_message_id, first_attempt_at, updated_at
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_message RENAME TO deliveries;
-- The sink's scan for re-driven rows and `sinks status`'s counts.
CREATE INDEX deliveries_by_state ON deliveries (sink, state);
