-- The same change as SQLite's (../0006_timer_subjects.sql): timers of every domain
-- (docs/domains.md, rules 7-9) name their command by kind and subject (a coupon, a hold,
-- an offer, a lot's end), and the kind is the one in its request id.
ALTER TABLE timers RENAME COLUMN coupon_id TO subject;
UPDATE timers SET kind = 'remind' WHERE kind = 'remind_expiry';
