-- The archive (docs/sinks.md): the business table a back office queries, one row per
-- issued coupon with its state. Written by the archive sink from the outbox, each batch in
-- one transaction with the sink's progress, so every outcome is applied exactly once.
CREATE TABLE archive_coupons (
    coupon_id   TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    -- active, redeemed or expired (archived: its validity ended unused).
    state       TEXT NOT NULL,
    -- When it entered that state, and the outcome (<partition>-<offset>) that put it there.
    state_at    TEXT NOT NULL,
    outcome_id  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX archive_coupons_by_state ON archive_coupons (state, campaign_id);
