-- Take a free lease, or renew one this caller still holds.
-- KEYS[1] the lease; ARGV: 1 "take" | "renew", 2 token, 3 TTL in ms. Returns 1 or 0.
if ARGV[1] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
