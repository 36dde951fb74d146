-- SharpEye alarm transitions. Each entry point runs atomically inside Redis, keyed by fingerprint, so
-- that concurrent hub nodes and replays after a crash can never open an alarm twice, lose a clear, or let
-- an older reading regress a newer state. Parameters come as one JSON object (ARGV[2]).
--
-- Fingerprint hash: order, ts (last applied device order/time), open (open alarm id), pending_since and
-- pending (hold-for-duration), flips (JSON list of transition times), flapping, want (state wanted while
-- flapping), params (JSON of the last signal, used by timers that raise later).
-- Alarm hash: doc, state, acked, acked_by, count, first_seen, last_seen, last_epoch, cleared_at, value,
-- evidence, fingerprint, silenced ('' | 'silence' | 'inhibited'), flapping, incident.
-- Timers zset members: '<kind>|<fingerprint>' with kind quiet, hold, flap or absence.

local function notify(p, kind, id, at, actor, state, note, incident)
  redis.call('XADD', p.k_events, 'MAXLEN', '~', p.maxlen, '*', 'type', kind, 'alarm', id, 'fingerprint', p.name,
             'at', at, 'actor', actor, 'state', state, 'note', note, 'incident', incident or '')
  redis.call('PUBLISH', p.k_live, cjson.encode({type = kind, alarm = id, state = state, at = at}))
end

local function live(p, kind, id, at, state)
  redis.call('PUBLISH', p.k_live, '{"type":"' .. kind .. '","alarm":"' .. id .. '","state":"' .. (state or '') ..
             '","at":"' .. at .. '"}')
end

local function history(p, id, at, action, actor, state, note)
  local hkey = p.history_prefix .. id
  redis.call('RPUSH', hkey, cjson.encode({at = at, action = action, actor = actor, state = state, note = note}))
  redis.call('LTRIM', hkey, -500, -1)
end

local function move(p, from, to)
  if from then redis.call('HINCRBY', p.k_counts, from, -1) end
  if to then redis.call('HINCRBY', p.k_counts, to, 1) end
end

local function timer(p, kind, due)
  redis.call('ZADD', p.k_timers, due, kind .. '|' .. p.name)
end

local function untimer(p, kind)
  redis.call('ZREM', p.k_timers, kind .. '|' .. p.name)
end

-- Record a raise/clear transition; return true when the fingerprint is now flapping.
local function flip(p, fp, now)
  if not p.flap_n or p.flap_n < 2 then return false end
  local flips = cjson.decode(redis.call('HGET', fp, 'flips') or '[]')
  local kept = {}
  for _, t in ipairs(flips) do
    if t > now - p.flap_window then table.insert(kept, t) end
  end
  table.insert(kept, now)
  redis.call('HSET', fp, 'flips', cjson.encode(kept))
  return #kept >= p.flap_n
end

local function clear_open(p, fp, id, at, epoch, actor, note)
  local akey = p.alarm_prefix .. id
  local cur = redis.call('HMGET', akey, 'acked', 'state', 'silenced')
  local state = 'cleared_unack'
  if cur[1] == '1' then state = 'cleared' end
  move(p, cur[2], state)
  redis.call('HSET', akey, 'state', state, 'cleared_at', at, 'flapping', '0')
  redis.call('HDEL', fp, 'open', 'flapping', 'want')
  redis.call('ZREM', p.k_open, id)
  redis.call('SREM', p.k_silenced, id)
  untimer(p, 'quiet')
  untimer(p, 'flap')
  redis.call('ZADD', p.k_by_time, epoch, id)
  history(p, id, at, 'cleared', actor, state, note)
  if cur[3] == '' or cur[3] == false then
    notify(p, 'cleared', id, at, actor, state, note, redis.call('HGET', akey, 'incident'))
  else
    live(p, 'cleared', id, at, state)
  end
  return state
end

local function correlate(p, id, now_epoch, now_iso)
  if not p.incident_group or p.incident_group == '' then return '' end
  local open_key = p.incident_open_prefix .. p.incident_group
  local inc = redis.call('GET', open_key)
  if inc then
    local ikey = p.incident_prefix .. inc
    local last = tonumber(redis.call('HGET', ikey, 'last_epoch') or '0')
    if last + p.incident_window >= now_epoch then
      redis.call('SADD', ikey .. ':members', id)
      redis.call('HSET', ikey, 'last_epoch', now_epoch, 'last_seen', now_iso)
      if p.rank > tonumber(redis.call('HGET', ikey, 'rank') or '0') then
        redis.call('HSET', ikey, 'rank', p.rank, 'severity', p.severity)
      end
      return inc
    end
  end
  inc = p.incident_id
  local ikey = p.incident_prefix .. inc
  redis.call('HSET', ikey, 'id', inc, 'group', p.incident_group, 'site', p.site, 'org_unit', p.org_unit,
             'first_seen', now_iso, 'last_seen', now_iso, 'last_epoch', now_epoch, 'rank', p.rank,
             'severity', p.severity)
  redis.call('SADD', ikey .. ':members', id)
  redis.call('SET', open_key, inc)
  redis.call('ZADD', p.k_incidents, now_epoch, inc)
  return inc
end

-- Create the alarm (the fingerprint has none open).
local function create(p, fp, now_iso, now_epoch, actor)
  local id = p.new_id
  local akey = p.alarm_prefix .. id
  local silenced = p.silenced or ''
  if silenced == '' and p.inhibitors then
    for _, ifp in ipairs(p.inhibitors) do
      if redis.call('HEXISTS', ifp, 'open') == 1 then silenced = 'inhibited' end
    end
  end
  redis.call('HSET', akey, 'id', id, 'doc', p.doc, 'state', 'active_unack', 'acked', '0', 'count', 1,
             'first_seen', now_iso, 'last_seen', now_iso, 'last_epoch', now_epoch,
             'value', p.value, 'evidence', p.evidence, 'fingerprint', p.name, 'silenced', silenced,
             'flapping', '0', 'incident', '')
  redis.call('HSET', fp, 'open', id)
  move(p, nil, 'active_unack')
  redis.call('ZADD', p.k_by_time, now_epoch, id)
  redis.call('ZADD', p.k_open, now_epoch, id)
  if p.quiet then timer(p, 'quiet', now_epoch + p.quiet) end
  if silenced == '' then
    local inc = correlate(p, id, now_epoch, now_iso)
    redis.call('HSET', akey, 'incident', inc)
    history(p, id, now_iso, 'raised', actor, 'active_unack', '')
    notify(p, 'raised', id, now_iso, actor, 'active_unack', '', inc)
  else
    if silenced == 'silence' then redis.call('SADD', p.k_silenced, id) end
    history(p, id, now_iso, 'raised', actor, 'active_unack', silenced)
    live(p, 'raised', id, now_iso, 'active_unack')
  end
  return id
end

-- Append evidence references to an alarm, each at most once (a repeated reading carries its episode's snapshot
-- and clip again), at most 50 in all.
local function add_evidence(akey, refs)
  local ev = cjson.decode(redis.call('HGET', akey, 'evidence') or '[]')
  local seen = {}
  for _, ref in ipairs(ev) do seen[ref] = true end
  local changed = false
  for _, ref in ipairs(refs) do
    if #ev < 50 and not seen[ref] then
      table.insert(ev, ref)
      seen[ref] = true
      changed = true
    end
  end
  if changed then redis.call('HSET', akey, 'evidence', cjson.encode(ev)) end
end

local function repeat_open(p, open, now_iso, now_epoch)
  local akey = p.alarm_prefix .. open
  redis.call('HINCRBY', akey, 'count', 1)
  redis.call('HSET', akey, 'last_seen', now_iso, 'last_epoch', now_epoch, 'value', p.value)
  if p.evidence ~= '[]' then add_evidence(akey, cjson.decode(p.evidence)) end
  redis.call('ZADD', p.k_by_time, now_epoch, open)
  if p.quiet then timer(p, 'quiet', now_epoch + p.quiet) end
  live(p, 'repeated', open, now_iso, '')
end

-- Raise, or repeat, honouring flapping.
local function raise(p, fp, open, now_iso, now_epoch, actor, flapping)
  if open then
    if flapping == nil then flapping = redis.call('HGET', fp, 'flapping') == '1' end
    if flapping then redis.call('HSET', fp, 'want', 'raise') end
    repeat_open(p, open, now_iso, now_epoch)
    return {'repeated', open}
  end
  flip(p, fp, now_epoch)
  return {'raised', create(p, fp, now_iso, now_epoch, actor)}
end

local function clear(p, fp, open, now_iso, now_epoch, actor)
  if not open then return {'noop', ''} end
  if redis.call('HGET', fp, 'flapping') == '1' then
    redis.call('HSET', fp, 'want', 'clear')
    return {'flapping', open}
  end
  if flip(p, fp, now_epoch) then
    redis.call('HSET', fp, 'flapping', '1', 'want', 'clear', 'flap_window', p.flap_window)
    redis.call('HSET', p.alarm_prefix .. open, 'flapping', '1')
    timer(p, 'flap', now_epoch + p.flap_window)
    local akey = p.alarm_prefix .. open
    local state = redis.call('HGET', akey, 'state')
    history(p, open, now_iso, 'flapping', actor, state, '')
    notify(p, 'flapping', open, now_iso, actor, state, '', redis.call('HGET', akey, 'incident'))
    return {'flapping', open}
  end
  clear_open(p, fp, open, now_iso, now_epoch, actor, '')
  return {'cleared', open}
end

-- apply: one signal from a rule, on fingerprint hash fp (cz: its count-window set; item: the signal's own
-- parameters, kept for timers that act later).
local function apply(p, fp, cz, item)
  local now_iso, now_epoch = p.now_iso, p.now_epoch
  local last = redis.call('HMGET', fp, 'order', 'ts', 'open', 'flapping')
  local open = last[3]
  if open == false then open = nil end
  if last[1] then
    local last_order, last_ts = tonumber(last[1]), tonumber(last[2]) or 0
    -- Older or repeated: ignore. A lower order with a much newer device time means the device restarted
    -- its sequence (a reboot), which is accepted.
    if p.order <= last_order and not (p.ts > last_ts + p.reset_grace) then
      return {'stale', open or ''}
    end
  end
  redis.call('HSET', fp, 'order', p.order_text, 'ts', p.ts_text)
  local action = p.action
  if action == 'heard' then
    -- absence rule: a reading arrived; clear any absence alarm and re-arm the timer
    redis.call('HSET', fp, 'params', cjson.encode(item))
    timer(p, 'absence', now_epoch + p.absent_s)
    return clear(p, fp, open, now_iso, now_epoch, p.actor)
  end
  if action == 'raise' then
    if p.count_n and p.count_n > 1 and not open then
      redis.call('ZADD', cz, now_epoch, p.new_id)
      redis.call('ZREMRANGEBYSCORE', cz, '-inf', now_epoch - p.count_window)
      redis.call('EXPIRE', cz, math.ceil(p.count_window) + 60)
      if redis.call('ZCARD', cz) < p.count_n then return {'counting', ''} end
      redis.call('DEL', cz)
    end
    if p.hold and p.hold > 0 and not open then
      local since = tonumber(redis.call('HGET', fp, 'pending_since') or '')
      if not since then
        redis.call('HSET', fp, 'pending_since', now_epoch, 'params', cjson.encode(item))
        timer(p, 'hold', now_epoch + p.hold)
        return {'pending', ''}
      end
      if now_epoch - since < p.hold then return {'pending', ''} end
    end
    if p.hold then
      redis.call('HDEL', fp, 'pending_since')
      untimer(p, 'hold')
    end
    return raise(p, fp, open, now_iso, now_epoch, p.actor, last[4] == '1')
  end
  -- clear
  redis.call('HDEL', fp, 'pending_since')
  untimer(p, 'hold')
  return clear(p, fp, open, now_iso, now_epoch, p.actor)
end

-- fire: a due timer. KEYS[1] = fingerprint hash. p.kind = quiet | hold | flap | absence.
local function fire(p)
  local fp = KEYS[1]
  local now_iso, now_epoch = p.now_iso, p.now_epoch
  local open = redis.call('HGET', fp, 'open')
  if open == false then open = nil end
  local kind = p.kind
  local stored = redis.call('HGET', fp, 'params')
  if stored then
    -- timers act with the settings of the signal that armed them (keys and prefixes are ours)
    local s = cjson.decode(stored)
    for _, key in ipairs({'doc', 'quiet', 'flap_n', 'flap_window', 'inhibitors', 'incident_group',
                          'incident_window', 'rank', 'severity', 'site', 'org_unit', 'value', 'evidence'}) do
      if p[key] == nil then p[key] = s[key] end
    end
  end
  if kind == 'quiet' then
    if not open then untimer(p, 'quiet'); return {'noop', ''} end
    local akey = p.alarm_prefix .. open
    local doc = cjson.decode(redis.call('HGET', akey, 'doc'))
    local due = tonumber(redis.call('HGET', akey, 'last_epoch')) + tonumber(doc['quiet_s'] or 0)
    if due > now_epoch then timer(p, 'quiet', due); return {'pending', open} end
    redis.call('HDEL', fp, 'flapping', 'want')
    clear_open(p, fp, open, now_iso, now_epoch, 'quiet-period', '')
    return {'cleared', open}
  elseif kind == 'hold' then
    local since = tonumber(redis.call('HGET', fp, 'pending_since') or '')
    untimer(p, 'hold')
    if not since or open then return {'noop', open or ''} end
    redis.call('HDEL', fp, 'pending_since')
    return raise(p, fp, open, now_iso, now_epoch, 'hold-elapsed')
  elseif kind == 'absence' then
    untimer(p, 'absence')
    if open then return {'noop', open} end
    return raise(p, fp, open, now_iso, now_epoch, 'absence')
  elseif kind == 'flap' then
    untimer(p, 'flap')
    p.flap_window = p.flap_window or tonumber(redis.call('HGET', fp, 'flap_window') or '300')
    if redis.call('HGET', fp, 'flapping') ~= '1' or not open then return {'noop', open or ''} end
    local flips = cjson.decode(redis.call('HGET', fp, 'flips') or '[]')
    local recent = 0
    for _, t in ipairs(flips) do
      if t > now_epoch - p.flap_window then recent = recent + 1 end
    end
    if recent >= 2 then
      timer(p, 'flap', now_epoch + p.flap_window)
      return {'flapping', open}
    end
    local want = redis.call('HGET', fp, 'want')
    redis.call('HDEL', fp, 'flapping', 'want')
    redis.call('HSET', p.alarm_prefix .. open, 'flapping', '0')
    if want == 'clear' then
      clear_open(p, fp, open, now_iso, now_epoch, 'flapping-ended', '')
      return {'cleared', open}
    end
    return {'repeated', open}
  end
  return redis.error_reply('unknown timer ' .. tostring(kind))
end

-- 研判 on an alarm (its hash akey; cur: its state, acked and incident): pending, escalated, confirmed, false_alarm or
-- review, in its history and its notification log; a false alarm is acknowledged with it.
local function verdict(p, akey, cur)
  local id, now_iso, actor, note = p.id, p.now_iso, p.actor, p.note
  local state = cur[1]
  redis.call('HSET', akey, 'verdict', p.verdict, 'verdict_by', actor .. '\n' .. note)
  history(p, id, now_iso, 'verdict:' .. p.verdict, actor, state, note)
  if p.verdict == 'false_alarm' and cur[2] ~= '1' then
    local before = state
    if state == 'active_unack' then state = 'active_ack' else state = 'cleared' end
    move(p, before, state)
    redis.call('HSET', akey, 'acked', '1', 'acked_by', actor, 'state', state)
  end
  redis.call('ZADD', p.k_by_time, p.now_epoch, id)
  notify(p, 'verdict', id, now_iso, actor, state, p.verdict .. (note ~= '' and (': ' .. note) or ''), cur[3])
  return {'verdict', state}
end

-- act: an operator action. KEYS[1] = alarm hash, KEYS[2] = fingerprint hash.
local function act(p)
  local akey, fp = KEYS[1], KEYS[2]
  local id, now_iso, now_epoch, actor, note = p.id, p.now_iso, p.now_epoch, p.actor, p.note
  local cur = redis.call('HMGET', akey, 'state', 'acked', 'incident')
  if not cur[1] then return {'missing', ''} end
  local state = cur[1]
  if p.action == 'acknowledge' then
    if cur[2] == '1' then return {'noop', state} end
    local before = state
    if state == 'active_unack' then state = 'active_ack' else state = 'cleared' end
    move(p, before, state)
    redis.call('HSET', akey, 'acked', '1', 'acked_by', actor, 'state', state)
    redis.call('ZADD', p.k_by_time, now_epoch, id)
    history(p, id, now_iso, 'acknowledged', actor, state, note)
    notify(p, 'acknowledged', id, now_iso, actor, state, note, cur[3])
    return {'acknowledged', state}
  elseif p.action == 'clear' then
    if state == 'cleared' or state == 'cleared_unack' then return {'noop', state} end
    if redis.call('HGET', fp, 'open') ~= id then return {'noop', state} end
    state = clear_open(p, fp, id, now_iso, now_epoch, actor, note)
    return {'cleared', state}
  elseif p.action == 'comment' then
    history(p, id, now_iso, 'commented', actor, state, note)
    redis.call('ZADD', p.k_by_time, now_epoch, id)
    live(p, 'commented', id, now_iso, state)
    return {'commented', state}
  elseif p.action == 'evidence' then
    -- evidence recorded for this alarm by a linked camera
    add_evidence(akey, p.refs or {})
    history(p, id, now_iso, 'evidence', actor, state, table.concat(p.refs or {}, ' '))
    live(p, 'updated', id, now_iso, state)
    return {'evidence', state}
  elseif p.action == 'verdict' then
    return verdict(p, akey, cur)
  elseif p.action == 'step' then
    -- a step of the alarm's procedure (处置预案) ticked by an operator, once
    local steps = cjson.decode(redis.call('HGET', akey, 'steps') or '{}')
    local key = tostring(p.step)
    if steps[key] then return {'noop', state} end
    steps[key] = {actor = actor, at = now_iso}
    redis.call('HSET', akey, 'steps', cjson.encode(steps))
    history(p, id, now_iso, 'procedure', actor, state, note)
    redis.call('ZADD', p.k_by_time, now_epoch, id)
    live(p, 'updated', id, now_iso, state)
    return {'step', state}
  elseif p.action == 'owner' then
    -- who works the alarm: taken, handed to another operator, or released for the next shift ('')
    redis.call('HSET', akey, 'owner', p.owner)
    history(p, id, now_iso, p.owner == '' and 'released' or 'owned', actor, state, note)
    redis.call('ZADD', p.k_by_time, now_epoch, id)
    live(p, 'updated', id, now_iso, state)
    return {'owner', state}
  elseif p.action == 'unsilence' then
    -- the silence that hid this alarm ended while it is still active: notify it now, once
    if redis.call('HGET', akey, 'silenced') ~= 'silence' then return {'noop', state} end
    redis.call('SREM', p.k_silenced, id)
    redis.call('HSET', akey, 'silenced', '')
    if state == 'active_unack' or state == 'active_ack' then
      local inc = correlate(p, id, now_epoch, now_iso)
      redis.call('HSET', akey, 'incident', inc)
      history(p, id, now_iso, 'notified', actor, state, 'silence ended')
      notify(p, 'raised', id, now_iso, actor, state, 'silence ended', inc)
      return {'raised', state}
    end
    return {'noop', state}
  end
  return redis.error_reply('unknown action ' .. tostring(p.action))
end

-- judge: a verdict on an alarm waiting for one (研判), in one atomic step: the alarm taken off the waiting list (a
-- final verdict) or handed to the supervisors (review, escalated), the verdict recorded (history, notification log)
-- and its audit entry. No hub stopped half-way and no Redis error between two calls can leave an alarm neither
-- waiting nor judged, and two operators (or nodes) judging one alarm at once: one of them does, the other is told.
-- KEYS[1] = alarm hash, KEYS[2] = its verification hash, KEYS[3] = escalation times (zset), KEYS[4] = waiting set,
-- KEYS[5] = audit stream. p.stage: the stage the alarm must be in ('' for any); p.due (escalation time, text): hand
-- it to the supervisors due then, instead of taking it off the list; p.audit: the audit entry's fields and values
-- (flat), appended only when the verdict is recorded. Answers {'not_waiting', ''}, {'wrong_stage', stage},
-- {'missing', stage} (the alarm is gone, e.g. expired: its waiting state is dropped) or {'verdict', state}.
-- p.again: a verdict the alarm already carries, given by the same actor with the same note, answers {'again', state}
-- instead of not_waiting or wrong_stage, recording nothing (a call retried after its reply was lost).
local function judge(p)
  local akey, vkey, id = KEYS[1], KEYS[2], p.id
  local stage = redis.call('HGET', vkey, 'stage')
  if p.again and (not stage or (p.stage ~= '' and stage ~= p.stage)) then
    local was = redis.call('HMGET', akey, 'verdict', 'verdict_by', 'state')
    if was[1] == p.verdict and was[2] == p.actor .. '\n' .. p.note then return {'again', was[3]} end
  end
  if not stage then return {'not_waiting', ''} end
  if p.stage ~= '' and stage ~= p.stage then return {'wrong_stage', stage} end
  local cur = redis.call('HMGET', akey, 'state', 'acked', 'incident', 'fingerprint')
  if p.due and cur[1] then
    redis.call('HSET', vkey, 'stage', 'supervisor', 'due', p.due)
    redis.call('ZADD', KEYS[3], p.due, id)
  else
    redis.call('DEL', vkey)
    redis.call('ZREM', KEYS[3], id)
    redis.call('SREM', KEYS[4], id)
  end
  if not cur[1] then return {'missing', stage} end
  p.name = cur[4] or ''
  local result = verdict(p, akey, cur)
  if p.audit then redis.call('XADD', KEYS[5], 'MAXLEN', '~', p.audit_maxlen, '*', unpack(p.audit)) end
  return result
end

-- batch: many signals in one call. KEYS = fp1, cz1, fp2, cz2, ... [, lease]; ARGV[2] = {common = {...}, items = [...]}.
-- Each item is applied in order; the whole batch is atomic.
-- A batch with a fence (common.fence: the lease value its node holds; the lease key is the last KEY) is
-- applied only while that lease still holds that value: a node paused past its lease and woken again
-- (another node took the device, with a higher token) changes nothing; every item answers 'fenced'.
local function batch(args)
  local common = args.common
  local out = {}
  if common.fence then
    if redis.call('GET', KEYS[#KEYS]) ~= common.fence then
      for i = 1, #args.items do out[i] = {'fenced', ''} end
      return out
    end
  end
  local meta = {__index = common}
  for i, item in ipairs(args.items) do
    local p = setmetatable({new_id = common.new_id .. '-' .. i, incident_id = common.incident_id .. '-' .. i},
                           {__index = setmetatable(item, meta)})
    out[i] = apply(p, KEYS[2 * i - 1], KEYS[2 * i], item)
  end
  return out
end

local p = cjson.decode(ARGV[2])
if ARGV[1] == 'batch' then return batch(p) end
if ARGV[1] == 'fire' then return fire(p) end
if ARGV[1] == 'act' then return act(p) end
if ARGV[1] == 'judge' then return judge(p) end
return redis.error_reply('unknown entry ' .. ARGV[1])
