-- The end of a miss in one round trip: store the answer, add the counters, release the lease.
-- KEYS[1]  the tenant's stats hash for the day
-- KEYS[2]  the cache entry to write (when ARGV[2] == "1")
-- KEYS[#KEYS] the lease to release (when ARGV[6] ~= "")
-- ARGV: 1 stats TTL in seconds, 2 "1" to store, 3 body, 4 cost in micro-dollars ("" = unknown),
--       5 entry TTL in seconds, 6 lease token, 7.. counter field / increment pairs
local stats = KEYS[1]

if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], 'v', ARGV[3], 'c', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end

-- Counters only grow, so a count equal to its increment created its field: only then can the
-- hash be new and need its lifetime (no TTL check on every miss).
local created = false
for i = 7, #ARGV, 2 do
  if redis.call('HINCRBY', stats, ARGV[i], ARGV[i + 1]) == tonumber(ARGV[i + 1]) then
    created = true
  end
end
if created and redis.call('TTL', stats) == -1 then
  redis.call('EXPIRE', stats, ARGV[1])
end

if ARGV[6] ~= '' and redis.call('GET', KEYS[#KEYS]) == ARGV[6] then
  redis.call('DEL', KEYS[#KEYS])
end
return 1
