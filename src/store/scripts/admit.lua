-- The whole hit path in one round trip: daily limit, lookup, budget, lease, day counters.
-- KEYS[1]  the tenant's stats hash for today
-- KEYS[2]  the cache entry to look up (when ARGV[4] == "1")
-- KEYS[#KEYS] the coalescing lease (when ARGV[5] ~= "")
-- ARGV: 1 daily request limit (0 = off), 2 daily budget in micro-dollars (-1 = none),
--       3 stats TTL in seconds, 4 "1" to look up, 5 lease token ("" = no lease), 6 lease TTL in ms
-- Returns {"limited"} | {"hit", body, cost_micros_or_empty} | {"budget"} | {"miss", 1 | 0}
local stats = KEYS[1]
local limit = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])

-- The hash gets its lifetime when a count creates its field (HINCRBY answers 1): once a day per
-- field, not a TTL check on every request.
local function count(field)
  if redis.call('HINCRBY', stats, field, 1) == 1 and redis.call('TTL', stats) == -1 then
    redis.call('EXPIRE', stats, ARGV[3])
  end
end

if limit > 0 then
  local served = tonumber(redis.call('HGET', stats, 'requests') or '0')
  if served >= limit then
    count('rate_limited')
    return {'limited'}
  end
end

if ARGV[4] == '1' then
  local entry = redis.call('HMGET', KEYS[2], 'v', 'c')
  if entry[1] then
    count('requests')
    redis.call('HINCRBY', stats, 'hits', 1)
    local cost = tonumber(entry[2] or '')
    if cost then
      redis.call('HINCRBY', stats, 'saved_micros', cost)
    end
    return {'hit', entry[1], entry[2] or ''}
  end
end

if budget >= 0 then
  local spent = tonumber(redis.call('HGET', stats, 'cost_micros') or '0')
  if spent >= budget then
    count('rate_limited')
    return {'budget'}
  end
end

count('requests')
local leader = 1
if ARGV[5] ~= '' then
  if not redis.call('SET', KEYS[#KEYS], ARGV[5], 'NX', 'PX', ARGV[6]) then
    leader = 0
  end
end
if leader == 1 then
  redis.call('HINCRBY', stats, 'misses', 1)
end
return {'miss', leader}
