-- Timers: the same table as SQLite's (../0004_timers.sql), typed.
CREATE TABLE timers (
    resource_id text        NOT NULL,
    timer_id    text        NOT NULL,
    partition   bigint      NOT NULL,
    due_at      timestamptz NOT NULL,
    user_id     text        NOT NULL,
    kind        text        NOT NULL,
    coupon_id   text        NOT NULL,
    PRIMARY KEY (resource_id, timer_id)
);
CREATE INDEX timers_by_due ON timers (due_at, resource_id, timer_id);

ALTER TABLE coupons ADD COLUMN expired_at timestamptz;
