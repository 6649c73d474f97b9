-- What users see of an event, a venue or a lot (docs/domains.md): its current
-- availability as JSON, written by the processor in the commit of every batch that
-- changed it, so a lookup on any edge reads committed state only.
CREATE TABLE resource_views (
    resource_id TEXT PRIMARY KEY,
    partition   INTEGER NOT NULL,
    -- The domain: seats, venue or auction.
    domain      TEXT NOT NULL,
    body        TEXT NOT NULL,
    -- The offset after the batch that wrote it.
    next_offset INTEGER NOT NULL
) WITHOUT ROWID;
