-- The journal on PostgreSQL 15 / Aurora PostgreSQL: the same tables as the SQLite journal
-- (../0001_journal.sql, ../0002_sink_progress.sql), typed for a write-heavy load with one
-- writer per partition. Plain PostgreSQL only, so Aurora runs it unchanged.
--
-- - Offsets, partitions and counts are bigint: a u32 partition or u64 offset fits, and
--   every key compares as one machine word.
-- - Text keys use the "C" collation: bytewise order, the same as SQLite's, and a memcmp
--   per comparison instead of a locale's rules on every index insert.
-- - Coupon times are timestamptz, at the millisecond precision SQLite's text keeps.
-- - Each index here serves a lookup the journal makes; none is there "in case": every
--   claim pays for each one on its way in.

-- One row per log partition. `epoch` fences zombies: a processor that takes a partition
-- bumps it, and every batch commit requires the epoch it was given. `next_offset` is the
-- truth about how far the partition's log has been decided.
CREATE TABLE partitions (
    partition   bigint PRIMARY KEY,
    epoch       bigint NOT NULL,
    next_offset bigint NOT NULL
);

-- The one outcome of each request (invariant 3). `body` is the outcome's JSON, byte for
-- byte what a replay of the log must reproduce (invariant 6): text, not jsonb, which would
-- normalise it. Clustered by insertion, which is log order per partition, so recovery's
-- scan of one partition in key order reads the heap nearly sequentially.
CREATE TABLE outcomes (
    partition   bigint NOT NULL,
    log_offset  bigint NOT NULL,
    resource_id text COLLATE "C" NOT NULL,
    request_id  text COLLATE "C" NOT NULL,
    user_id     text NOT NULL,
    status      text NOT NULL,
    body        text NOT NULL,
    -- Recovery, the outbox join and the audit read by position.
    PRIMARY KEY (partition, log_offset),
    -- Status lookups and the sold-out gate read by request; it also refuses a second
    -- outcome for one request.
    CONSTRAINT outcomes_by_request UNIQUE (resource_id, request_id)
);

-- Projections derived from outcomes in the same transaction, for lookups and the audit.
CREATE TABLE campaigns (
    campaign_id    text COLLATE "C" PRIMARY KEY,
    partition      bigint NOT NULL,
    capacity       bigint NOT NULL,
    per_user_limit bigint NOT NULL,
    spec           text NOT NULL
);

CREATE TABLE coupons (
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    redeemed_at timestamptz,
    coupon_id   text COLLATE "C" PRIMARY KEY,
    campaign_id text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    request_id  text NOT NULL
);
-- "My coupons".
CREATE INDEX coupons_by_user ON coupons (user_id);

-- Work for the sinks: one row per state-changing outcome, in commit order per partition.
-- The outcome id (`<partition>-<log_offset>`) lets a sink that delivers twice recognise
-- the duplicate (invariant 7); the outcome itself is read from `outcomes`, not copied.
CREATE TABLE outbox (
    partition  bigint NOT NULL,
    log_offset bigint NOT NULL,
    kind       text NOT NULL,
    PRIMARY KEY (partition, log_offset)
);

-- Log records that could not be decided (invariant 9): kept with the reason, skipped.
CREATE TABLE dead_letters (
    partition  bigint NOT NULL,
    log_offset bigint NOT NULL,
    reason     text NOT NULL,
    payload    bytea NOT NULL,
    PRIMARY KEY (partition, log_offset)
);

-- How far each sink has carried each partition's outbox: the next outbox offset it has
-- not yet delivered. A sink saves it after delivering, so a crash in between makes it
-- deliver again, and the sink recognises the repeat by outcome id (invariant 7).
CREATE TABLE sink_progress (
    sink        text COLLATE "C" NOT NULL,
    partition   bigint NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (sink, partition)
);
