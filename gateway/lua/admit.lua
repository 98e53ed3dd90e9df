-- Admission of one request against every entity's rate limits and budget, in one round trip.
--
-- Keys are derived here from the prefix and the entity ids in ARGV rather than passed in KEYS:
-- the tpm and reservation buckets depend on Redis's own clock (TIME), which the caller cannot
-- know. That ties llmur to one Redis (or a primary), not Redis Cluster.
--
-- ARGV: prefix, request_id, reserve (estimated cost, in 1e-8 USD), in-flight ttl (ms),
--       reservation buckets (minutes), n, then n groups of 5:
--       entity id, rpm limit, tpm limit, parallel limit, max budget (1e-8 USD); -1 = no limit.
-- Returns one of
--   {'ok', bucket, req_limit, req_remaining, tok_limit, tok_remaining, spend_1, ..., spend_n,
--    reserved_1, ..., reserved_n}   (spend '' for an entity without a budget)
--   {'rpm' | 'tpm' | 'parallel', entity index, limit, retry after (s), remaining tokens}
--   {'budget', entity index, spend, reserved}
--   {'load', entity index, ...}   budget counters missing: the caller rebuilds them and retries
-- Nothing is written unless every check passes, so a refused request leaves no trace.
local prefix = ARGV[1]
local request_id = ARGV[2]
local reserve = tonumber(ARGV[3])
local inflight_ttl = tonumber(ARGV[4])
local buckets = tonumber(ARGV[5])
local n = tonumber(ARGV[6])

local t = redis.call('TIME')
local sec = tonumber(t[1])
local now_ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(sec / 60)

local req_limit, req_remaining, tok_limit, tok_remaining = -1, -1, -1, -1
local spends = {}
local reserveds = {}
local missing = {}

local function resv_keys(id)
  local keys = {}
  for b = minute - buckets + 1, minute do
    keys[#keys + 1] = prefix .. 'resv:' .. id .. ':' .. b
  end
  return keys
end

for i = 0, n - 1 do
  local base = 7 + i * 5
  local id = ARGV[base]
  local rpm = tonumber(ARGV[base + 1])
  local tpm = tonumber(ARGV[base + 2])
  local par = tonumber(ARGV[base + 3])
  local budget = tonumber(ARGV[base + 4])
  spends[i + 1] = ''
  reserveds[i + 1] = '0'
  local used = 0
  local tokens_left = -1
  if tpm >= 0 then
    used = tonumber(redis.call('GET', prefix .. 'tpm:' .. id .. ':' .. minute) or '0')
    tokens_left = math.max(tpm - used, 0)
  end
  if rpm >= 0 then
    local k = prefix .. 'rpm:' .. id
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now_ms - 60000)
    local count = redis.call('ZCARD', k)
    if count >= rpm then
      local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
      local wait = 1
      if oldest[2] then wait = math.ceil((60000 - (now_ms - tonumber(oldest[2]))) / 1000) end
      if wait < 1 then wait = 1 end
      return {'rpm', i + 1, rpm, wait, tokens_left}
    end
    local left = rpm - count - 1
    if req_remaining < 0 or left < req_remaining then req_limit, req_remaining = rpm, left end
  end
  if tpm >= 0 then
    if used >= tpm then
      return {'tpm', i + 1, tpm, 60 - (sec % 60), 0}
    end
    local left = tpm - used
    if tok_remaining < 0 or left < tok_remaining then tok_limit, tok_remaining = tpm, left end
  end
  if par >= 0 then
    local k = prefix .. 'par:' .. id
    -- Members are scored with their expiry, so a slot held by a crashed process frees itself.
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now_ms)
    if redis.call('ZCARD', k) >= par then
      return {'parallel', i + 1, par, 1, -1}
    end
  end
  if budget >= 0 then
    local spend = redis.call('HGET', prefix .. 'bud:' .. id, 's')
    if not spend then
      missing[#missing + 1] = i + 1
    else
      local reserved = 0
      for _, v in ipairs(redis.call('MGET', unpack(resv_keys(id)))) do
        if v then reserved = reserved + tonumber(v) end
      end
      -- Admit while settled spend plus what is in flight is still under the budget; this
      -- request's own reservation may then cross it, which bounds the overshoot by one reservation.
      if tonumber(spend) + reserved >= budget then
        return {'budget', i + 1, spend, string.format('%.0f', reserved)}
      end
      spends[i + 1] = spend
      reserveds[i + 1] = string.format('%.0f', reserved)
    end
  end
end

if #missing > 0 then
  local out = {'load'}
  for _, i in ipairs(missing) do out[#out + 1] = i end
  return out
end

for i = 0, n - 1 do
  local base = 7 + i * 5
  local id = ARGV[base]
  if tonumber(ARGV[base + 1]) >= 0 then
    local k = prefix .. 'rpm:' .. id
    redis.call('ZADD', k, now_ms, request_id)
    redis.call('PEXPIRE', k, 60000)
  end
  if tonumber(ARGV[base + 3]) >= 0 then
    local k = prefix .. 'par:' .. id
    redis.call('ZADD', k, now_ms + inflight_ttl, request_id)
    redis.call('PEXPIRE', k, inflight_ttl)
  end
  if tonumber(ARGV[base + 4]) >= 0 and reserve > 0 then
    local k = prefix .. 'resv:' .. id .. ':' .. minute
    redis.call('INCRBY', k, ARGV[3])
    redis.call('EXPIRE', k, (buckets + 1) * 60)
  end
end

local out = {'ok', minute, req_limit, req_remaining, tok_limit, tok_remaining}
for i = 1, n do out[#out + 1] = spends[i] end
for i = 1, n do out[#out + 1] = reserveds[i] end
return out
