-- How far each sink has carried each partition's outbox: the next outbox offset it has
-- not yet delivered. A sink saves it after delivering, so a crash in between makes it
-- deliver again, and the sink recognises the repeat by outcome id (invariant 7).
CREATE TABLE sink_progress (
    sink        TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (sink, partition)
) WITHOUT ROWID;
