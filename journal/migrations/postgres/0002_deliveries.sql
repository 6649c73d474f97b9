-- The delivery ledger (as ../0003_deliveries.sql): one row per (sink, outcome) that a sink
-- tried to deliver, so that a retry, a re-delivery after a crash or a redrive never sends a
-- message twice, and an operator can see what was sent, what failed and why.
-- The outcome id is `<partition>-<log_offset>`: the key is that id in its two parts.
--
-- state: `sending` (written before the provider is called; found at start it means the
-- process died mid-send), `sent` (the provider accepted it: never sent again), `failed`
-- (a permanent error; the partition moved on), `queued` (a failed one re-driven by
-- `turnstile sinks retry`, waiting for the sink).
CREATE TABLE deliveries (
    sink                text COLLATE "C" NOT NULL,
    partition           bigint NOT NULL,
    log_offset          bigint NOT NULL,
    state               text NOT NULL CHECK (state IN ('sending', 'sent', 'failed', 'queued')),
    attempts            integer NOT NULL,
    last_error          text,
    provider_message_id text,
    first_attempt_at    timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (sink, partition, log_offset)
);
-- The sink's scan for re-driven rows and `sinks status`'s counts.
CREATE INDEX deliveries_by_state ON deliveries (sink, state);
