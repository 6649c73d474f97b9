-- The archive: the same table as SQLite's (../0005_archive.sql), typed.
CREATE TABLE archive_coupons (
    coupon_id   text        PRIMARY KEY,
    campaign_id text        NOT NULL,
    user_id     text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    state       text        NOT NULL,
    state_at    timestamptz NOT NULL,
    outcome_id  text        NOT NULL
);
CREATE INDEX archive_coupons_by_state ON archive_coupons (state, campaign_id);
