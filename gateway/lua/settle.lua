-- Settlement of one admitted request, in one round trip: release its parallel slot and budget
-- reservation, book its real cost and tokens, and append its spend event to the stream.
--
-- ARGV: prefix, request_id, reservation bucket (minute), reserve, cost (1e-8 USD), tokens,
--       stream key, event payload, n, then n groups of 2: entity id, flags
--       (flags: 'p' held a parallel slot, 'b' has a budget, 't' has a tpm limit).
-- Returns the stream entry id.
local prefix = ARGV[1]
local request_id = ARGV[2]
local bucket = ARGV[3]
local reserve = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local n = tonumber(ARGV[9])

local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)

for i = 0, n - 1 do
  local id = ARGV[10 + i * 2]
  local flags = ARGV[11 + i * 2]
  if string.find(flags, 'p', 1, true) then
    redis.call('ZREM', prefix .. 'par:' .. id, request_id)
  end
  if string.find(flags, 'b', 1, true) then
    local rk = prefix .. 'resv:' .. id .. ':' .. bucket
    -- An expired bucket means the reservation already lapsed; recreating it would go negative.
    if reserve > 0 and redis.call('EXISTS', rk) == 1 then
      redis.call('DECRBY', rk, ARGV[4])
    end
    -- Only a loaded counter is bumped: a missing one is rebuilt from the database and the
    -- stream, which already include this event.
    local bk = prefix .. 'bud:' .. id
    if cost > 0 and redis.call('HEXISTS', bk, 's') == 1 then
      redis.call('HINCRBY', bk, 's', ARGV[5])
    end
  end
  if tokens > 0 and string.find(flags, 't', 1, true) then
    local tk = prefix .. 'tpm:' .. id .. ':' .. minute
    redis.call('INCRBY', tk, ARGV[6])
    redis.call('EXPIRE', tk, 120)
  end
end

return redis.call('XADD', ARGV[7], '*', 'e', ARGV[8])
