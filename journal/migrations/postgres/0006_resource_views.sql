-- The same table as SQLite's (../0007_resource_views.sql): what users see of an event,
-- a venue or a lot, written in the commit of every batch that changed it.
CREATE TABLE resource_views (
    resource_id text PRIMARY KEY,
    partition   bigint NOT NULL,
    domain      text   NOT NULL,
    body        jsonb  NOT NULL,
    next_offset bigint NOT NULL
);
