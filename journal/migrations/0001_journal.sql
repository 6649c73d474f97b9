-- The journal of the embedded default (SQLite). Postgres gets the same tables.

-- One row per log partition. `epoch` fences zombies: a processor that takes a partition
-- bumps it, and every batch commit requires the epoch it was given. `next_offset` is the
-- truth about how far the partition's log has been decided.
CREATE TABLE partitions (
    partition   INTEGER PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    next_offset INTEGER NOT NULL
);

-- Tables are WITHOUT ROWID, clustered on their natural key: every claim writes several of
-- them, and a rowid table plus a key index is two B-trees where one does.

-- The one outcome of each request (invariant 3). `body` is the outcome's JSON, byte for
-- byte what a replay of the log must reproduce (invariant 6).
CREATE TABLE outcomes (
    resource_id TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    log_offset  INTEGER NOT NULL,
    user_id     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (resource_id, request_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX outcomes_by_position ON outcomes (partition, log_offset);

-- Projections derived from outcomes in the same transaction, for lookups and the audit.
CREATE TABLE campaigns (
    campaign_id    TEXT    PRIMARY KEY,
    partition      INTEGER NOT NULL,
    capacity       INTEGER NOT NULL,
    per_user_limit INTEGER NOT NULL,
    spec           TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE coupons (
    coupon_id   TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    redeemed_at TEXT
) WITHOUT ROWID;
CREATE INDEX coupons_by_user ON coupons (user_id);

-- Work for the sinks: one row per state-changing outcome, in commit order per partition.
-- The outcome id (`<partition>-<log_offset>`) lets a sink that delivers twice recognise
-- the duplicate (invariant 7); the outcome itself is read from `outcomes`, not copied.
CREATE TABLE outbox (
    partition  INTEGER NOT NULL,
    log_offset INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    PRIMARY KEY (partition, log_offset)
) WITHOUT ROWID;

-- Log records that could not be decided (invariant 9): kept with the reason, skipped.
CREATE TABLE dead_letters (
    partition  INTEGER NOT NULL,
    log_offset INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    PRIMARY KEY (partition, log_offset)
) WITHOUT ROWID;
