-- Timers (docs/exactly-once.md, rules 33-38): due commands the expiry scheduler writes
-- back into the log. A row is made by the commit of the outcome that needs it (a granted
-- coupon makes its expiry and reminder timers) and deleted by the commit of the timer
-- command's own outcome, so a row exists exactly while its timer has not taken effect.
CREATE TABLE timers (
    resource_id TEXT    NOT NULL,
    -- The timer command's request id (timer:expire:<coupon_id>, timer:remind:<coupon_id>).
    timer_id    TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    -- RFC 3339 UTC with milliseconds, so text order is time order.
    due_at      TEXT    NOT NULL,
    -- The command's user: the coupon's holder.
    user_id     TEXT    NOT NULL,
    -- The command kind (expire, remind_expiry) and what it acts on.
    kind        TEXT    NOT NULL,
    coupon_id   TEXT    NOT NULL,
    PRIMARY KEY (resource_id, timer_id)
) WITHOUT ROWID;
CREATE INDEX timers_by_due ON timers (due_at, resource_id, timer_id);

-- When a coupon's expiry took effect (its CouponExpired outcome committed).
ALTER TABLE coupons ADD COLUMN expired_at TEXT;
