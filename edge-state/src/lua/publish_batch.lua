-- The sold-out gate's state for one committed batch of one partition, applied atomically
-- so that a campaign's decided requests are in its set before its sold_out flag is.
-- Idempotent: publishing the same batch twice changes nothing the second time.
--
-- ARGV: partition key, campaign key prefix, decided key prefix, partition, from_offset,
-- next_offset, decided-set TTL (s), then per campaign touched by the batch:
-- campaign id, capacity (0 unless created in this batch), highest coupon sequence granted
-- (0 if none), 1 if a claim was rejected sold_out (else 0), member count, members...
local partition_key = ARGV[1]
local from_offset = tonumber(ARGV[5])
local next_offset = tonumber(ARGV[6])
local ttl_s = tonumber(ARGV[7])

-- Progress: the gate trusts a partition only while every batch since offset 0 was
-- applied here. A batch starting beyond what was applied means one was lost (a crash
-- between commit and publish, a dropped publish, a Redis restart that wiped the state).
local known = redis.call('HGET', partition_key, 'next_offset')
if known == false then
  if from_offset ~= 0 then
    redis.call('HSET', partition_key, 'gap', 1)
  end
  redis.call('HSET', partition_key, 'next_offset', next_offset)
else
  known = tonumber(known)
  if from_offset > known then
    redis.call('HSET', partition_key, 'gap', 1)
  end
  if next_offset > known then
    redis.call('HSET', partition_key, 'next_offset', next_offset)
  end
end

-- Lua's unpack is bounded by the C stack (8000 values): add members in chunks.
local members_per_sadd_max = 1000
local i = 8
while i <= #ARGV do
  local campaign = ARGV[i]
  local capacity = tonumber(ARGV[i + 1])
  local issued = tonumber(ARGV[i + 2])
  local rejected_sold_out = ARGV[i + 3] == '1'
  local count = tonumber(ARGV[i + 4])
  local campaign_key = ARGV[2] .. campaign
  local decided_key = ARGV[3] .. campaign
  local first = i + 5
  local last = first + count - 1
  local added = 0
  local chunk = first
  while chunk <= last do
    local chunk_last = math.min(chunk + members_per_sadd_max - 1, last)
    added = added + redis.call('SADD', decided_key, unpack(ARGV, chunk, chunk_last))
    chunk = chunk_last + 1
  end
  -- `decided` counts the set's members, so the gate can tell a set that expired or was
  -- evicted on its own (SCARD differs) from a complete one.
  redis.call('HINCRBY', campaign_key, 'decided', added)
  redis.call('HSET', campaign_key, 'partition', ARGV[4])
  if capacity > 0 then
    redis.call('HSETNX', campaign_key, 'capacity', capacity)
  end
  local issued_now = tonumber(redis.call('HGET', campaign_key, 'issued') or '0')
  if issued > issued_now then
    redis.call('HSET', campaign_key, 'issued', issued)
    issued_now = issued
  end
  local capacity_known = tonumber(redis.call('HGET', campaign_key, 'capacity') or '0')
  if rejected_sold_out or (capacity_known > 0 and issued_now >= capacity_known) then
    redis.call('HSET', campaign_key, 'sold_out', 1)
  end
  -- Only the set expires: the hash (a few fields) stays, so a set that expired is seen
  -- as incomplete (SCARD below `decided`) instead of being silently restarted empty.
  if redis.call('EXISTS', decided_key) == 1 then
    redis.call('EXPIRE', decided_key, ttl_s)
  end
  i = last + 1
end
return 1
