-- The sold-out gate's question: was this request of a sold-out campaign ever decided?
-- Returns {0} when Redis cannot say for sure (the caller must read the journal),
-- {1, 0} for "certainly never decided", {1, 1} for "may have been decided" and
-- {1, 1, outcome JSON} when the replay cache holds its outcome.
--
-- KEYS: campaign hash, decided set, replay key. ARGV: request hash, partition key prefix.
local campaign = redis.call('HMGET', KEYS[1], 'sold_out', 'decided', 'partition', 'capacity')
-- Trust needs Redis's own sold_out flag: it is set in the same script run as the keys of
-- the batch that sold out, whereas an edge may learn "sold out" first (from the journal).
-- And a capacity: only a creation sets it, so a hash that vanished (deleted, evicted) and
-- was recreated by a later batch, knowing only that batch's keys, is not trusted.
if campaign[1] ~= '1' or not campaign[2] or not campaign[3] or not campaign[4] then
  return {0}
end
local progress = redis.call('HMGET', ARGV[2] .. campaign[3], 'next_offset', 'gap')
if not progress[1] or progress[2] == '1' then
  return {0}
end
if redis.call('SCARD', KEYS[2]) ~= tonumber(campaign[2]) then
  return {0}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return {1, 0}
end
local outcome = redis.call('GET', KEYS[3])
if not outcome then
  return {1, 1}
end
return {1, 1, outcome}
