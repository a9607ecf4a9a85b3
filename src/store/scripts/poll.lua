-- A coalescing follower's check, in one round trip: is the answer there, or is the leader gone?
-- KEYS[1] the cache entry, KEYS[2] the lease
-- Returns {"ready", body, cost_micros_or_empty} | {"pending"} | {"abandoned"}
local entry = redis.call('HMGET', KEYS[1], 'v', 'c')
if entry[1] then
  return {'ready', entry[1], entry[2] or ''}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'pending'}
end
return {'abandoned'}
