-- SharpEye alarm transitions. Each entry point runs atomically inside Redis, keyed by fingerprint,
-- so that concurrent hub nodes and replays after a crash can never open an alarm twice, lose a clear,
-- or let an older reading regress a newer state.
--
-- Shared layout
--   fingerprint hash: order, ts (last applied device order and time), open (id of the open alarm)
--   alarm hash: doc (static JSON), state, acked, acked_by, count, first_seen, last_seen, last_epoch,
--               cleared_at, value, evidence (JSON list), fingerprint
--   by_time zset (id -> last change), open zset (id -> first seen), events stream (notification log),
--   timers zset (fingerprint -> quiet-period end), live pub/sub channel

local function notify(events, maxlen, live, kind, id, fp, at, actor, state, note)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'alarm', id, 'fingerprint', fp,
             'at', at, 'actor', actor, 'state', state, 'note', note)
  redis.call('PUBLISH', live, cjson.encode({type = kind, alarm = id, state = state, at = at}))
end

local function history(hkey, at, action, actor, state, note)
  redis.call('RPUSH', hkey, cjson.encode({at = at, action = action, actor = actor, state = state, note = note}))
  redis.call('LTRIM', hkey, -500, -1)
end

local function move(counts, from, to)
  if from then redis.call('HINCRBY', counts, from, -1) end
  if to then redis.call('HINCRBY', counts, to, 1) end
end

local function clear_open(fp, akey, hkey, by_time, open_z, events, timers, live, id, at, epoch, actor, maxlen, note,
                          counts)
  local cur = redis.call('HMGET', akey, 'acked', 'state')
  local state = 'cleared_unack'
  if cur[1] == '1' then state = 'cleared' end
  move(counts, cur[2], state)
  redis.call('HSET', akey, 'state', state, 'cleared_at', at)
  redis.call('HDEL', fp, 'open')
  redis.call('ZREM', open_z, id)
  redis.call('ZREM', timers, fp)
  redis.call('ZADD', by_time, epoch, id)
  history(hkey, at, 'cleared', actor, state, note)
  notify(events, maxlen, live, 'cleared', id, fp, at, actor, state, note)
  return state
end

-- apply: a signal from a rule.
-- KEYS: fp, by_time, open, events, timers, live, counts
-- ARGV: action, order, ts_epoch, new_id, now_iso, now_epoch, doc, alarm_prefix, history_prefix,
--       actor, value_json, evidence_json, quiet_s, reset_grace_s, events_maxlen, fingerprint
local function apply(KEYS, ARGV)
  local fp, by_time, open_z, events, timers, live = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
  local action, order, ts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
  local now_iso, now_epoch = ARGV[5], tonumber(ARGV[6])
  local actor, maxlen, name = ARGV[10], ARGV[15], ARGV[16]
  local last = redis.call('HMGET', fp, 'order', 'ts', 'open')
  local open = last[3]
  if open == false then open = nil end
  if last[1] then
    local last_order, last_ts = tonumber(last[1]), tonumber(last[2]) or 0
    -- Older or repeated: ignore. A lower order with a much newer time means the device restarted its
    -- sequence (a reboot), which is accepted.
    if order <= last_order and not (ts > last_ts + tonumber(ARGV[14])) then
      return {'stale', open or ''}
    end
  end
  redis.call('HSET', fp, 'order', ARGV[2], 'ts', ARGV[3])
  local quiet = tonumber(ARGV[13])
  if action == 'raise' then
    if open then
      local akey = ARGV[8] .. open
      redis.call('HINCRBY', akey, 'count', 1)
      redis.call('HSET', akey, 'last_seen', now_iso, 'last_epoch', now_epoch, 'value', ARGV[11])
      if ARGV[12] ~= '[]' then
        local ev = cjson.decode(redis.call('HGET', akey, 'evidence') or '[]')
        for _, ref in ipairs(cjson.decode(ARGV[12])) do
          if #ev < 50 then table.insert(ev, ref) end
        end
        redis.call('HSET', akey, 'evidence', cjson.encode(ev))
      end
      redis.call('ZADD', by_time, now_epoch, open)
      if quiet then redis.call('ZADD', timers, now_epoch + quiet, name) end
      redis.call('PUBLISH', live, cjson.encode({type = 'repeated', alarm = open, at = now_iso}))
      return {'repeated', open}
    end
    local id = ARGV[4]
    local akey = ARGV[8] .. id
    redis.call('HSET', akey, 'doc', ARGV[7], 'state', 'active_unack', 'acked', '0', 'count', 1,
               'first_seen', now_iso, 'last_seen', now_iso, 'last_epoch', now_epoch,
               'value', ARGV[11], 'evidence', ARGV[12], 'fingerprint', name)
    redis.call('HSET', fp, 'open', id)
    move(KEYS[7], nil, 'active_unack')
    redis.call('ZADD', by_time, now_epoch, id)
    redis.call('ZADD', open_z, now_epoch, id)
    if quiet then redis.call('ZADD', timers, now_epoch + quiet, name) end
    history(ARGV[9] .. id, now_iso, 'raised', actor, 'active_unack', '')
    notify(events, maxlen, live, 'raised', id, name, now_iso, actor, 'active_unack', '')
    return {'raised', id}
  end
  if not open then return {'noop', ''} end
  clear_open(fp, ARGV[8] .. open, ARGV[9] .. open, by_time, open_z, events, timers, live, open,
             now_iso, now_epoch, actor, maxlen, '', KEYS[7])
  return {'cleared', open}
end

-- quiet: clear an alarm whose quiet period has passed (timer sweep). Re-arms the timer otherwise.
-- KEYS: fp, by_time, open, events, timers, live, counts
-- ARGV: fingerprint, now_iso, now_epoch, alarm_prefix, history_prefix, events_maxlen
local function quiet(KEYS, ARGV)
  local fp, timers = KEYS[1], KEYS[5]
  local open = redis.call('HGET', fp, 'open')
  if not open then
    redis.call('ZREM', timers, ARGV[1])
    return {'noop', ''}
  end
  local akey = ARGV[4] .. open
  local doc = cjson.decode(redis.call('HGET', akey, 'doc'))
  local due = tonumber(redis.call('HGET', akey, 'last_epoch')) + tonumber(doc['quiet_s'] or 0)
  local now_epoch = tonumber(ARGV[3])
  if due > now_epoch then
    redis.call('ZADD', timers, due, ARGV[1])
    return {'pending', open}
  end
  clear_open(fp, akey, ARGV[5] .. open, KEYS[2], KEYS[3], KEYS[4], timers, KEYS[6], open, ARGV[2], now_epoch,
             'quiet-period', ARGV[6], '', KEYS[7])
  return {'cleared', open}
end

-- act: an operator action on an alarm: acknowledge, clear, comment.
-- KEYS: alarm, history, fp, by_time, open, events, timers, live, counts
-- ARGV: action, alarm_id, now_iso, now_epoch, actor, note, events_maxlen
local function act(KEYS, ARGV)
  local akey, hkey, fp = KEYS[1], KEYS[2], KEYS[3]
  local action, id, now_iso, now_epoch, actor, note, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),
                                                             ARGV[5], ARGV[6], ARGV[7]
  local cur = redis.call('HMGET', akey, 'state', 'acked')
  if not cur[1] then return {'missing', ''} end
  local state = cur[1]
  if action == 'acknowledge' then
    if cur[2] == '1' then return {'noop', state} end
    local before = state
    if state == 'active_unack' then state = 'active_ack' else state = 'cleared' end
    move(KEYS[9], before, state)
    redis.call('HSET', akey, 'acked', '1', 'acked_by', actor, 'state', state)
    redis.call('ZADD', KEYS[4], now_epoch, id)
    history(hkey, now_iso, 'acknowledged', actor, state, note)
    notify(KEYS[6], maxlen, KEYS[8], 'acknowledged', id, redis.call('HGET', akey, 'fingerprint'), now_iso,
           actor, state, note)
    return {'acknowledged', state}
  elseif action == 'clear' then
    if state == 'cleared' or state == 'cleared_unack' then return {'noop', state} end
    if redis.call('HGET', fp, 'open') ~= id then return {'noop', state} end
    state = clear_open(fp, akey, hkey, KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], id, now_iso, now_epoch,
                       actor, maxlen, note, KEYS[9])
    return {'cleared', state}
  elseif action == 'comment' then
    history(hkey, now_iso, 'commented', actor, state, note)
    redis.call('ZADD', KEYS[4], now_epoch, id)
    redis.call('PUBLISH', KEYS[8], cjson.encode({type = 'commented', alarm = id, at = now_iso}))
    return {'commented', state}
  end
  return redis.error_reply('unknown action ' .. action)
end

local entry = ARGV[1]
local args = {}
for i = 2, #ARGV do args[i - 1] = ARGV[i] end
if entry == 'apply' then return apply(KEYS, args) end
if entry == 'quiet' then return quiet(KEYS, args) end
if entry == 'act' then return act(KEYS, args) end
return redis.error_reply('unknown entry ' .. entry)
