-- The delivery ledger is keyed per message (as ../0008_delivery_messages.sql): one outcome
-- may call for several messages, (sink, partition, log_offset, message_index). Message 0 is
-- the outcome's first message, 1.. the further recipients in the decision's order. Every
-- row written before this migration was an outcome's only message: index 0, so nothing
-- already sent is sent again.
ALTER TABLE deliveries ADD COLUMN message_index integer NOT NULL DEFAULT 0;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (sink, partition, log_offset, message_index);
