-- swarmgate.balancer: balancer_by_lua for `upstream sg_<name>`: picks the peer of one request
-- attempt from the live state (swarmgate.state).
--
-- * Exact shares across workers: a smooth weighted round-robin schedule over the active peers
--   (built once per worker and version, kept on the service swarmgate.state caches), indexed by
--   one shared counter per service, so all workers together walk a single schedule.
-- * Backups only when no active peer is left to try.
-- * Retries (proxy_next_upstream): set_more_tries, and each retry takes a peer this request has
--   not tried yet, actives first; a peer that failed is skipped by first picks for FAIL_TIMEOUT
--   seconds (like max_fails=1 fail_timeout=2s in reload mode) while another is available.
-- * sticky "ip_hash" (IPv4 /24, like nginx) or "hash" (whole $remote_addr): the client's address
--   hashes to a schedule slot, so the same client keeps its peer while the peer set is unchanged.
-- * A request pinned to one colour (ngx.ctx.swarmgate_pin, set by swarmgate.preview in the access
--   phase) is balanced over that pinned view instead: a preview has only its colour's peers (no
--   other colour even on retries; none left: 502), a canary cookie its colour's peers first.

local ngx_balancer = require "ngx.balancer"
local state = require "swarmgate.state"

local M = {}

local RUNTIME = ngx.shared.swarmgate_runtime -- "rr:<service>" counters, "down:<service>:<peer>"
local FAIL_TIMEOUT = 2
local MAX_SCHEDULE = 100000 -- longer schedules (huge co-prime weights) use the strided fallback
-- Where a request with no peer goes: a path under /dev/null always fails to connect at once, so
-- nginx answers 502 (an error in balancer_by_lua would answer 500).
local NO_PEER = "unix:/dev/null/swarmgate-no-peer"

local function gcd(a, b)
    while b ~= 0 do
        a, b = b, a % b
    end
    return a
end

-- The schedule of `peers`: { total = T, slots = {peer indices} or nil, cum = {cumulative} }.
-- Weights are divided by their gcd, so 30/30/30/10 gives a cycle of 10 slots.
local function build_schedule(peers)
    local g = 0
    for _, p in ipairs(peers) do
        g = gcd(p.weight, g)
    end
    local weights, total, cum = {}, 0, {}
    for i, p in ipairs(peers) do
        weights[i] = p.weight / g
        total = total + weights[i]
        cum[i] = total
    end
    local sched = { total = total, cum = cum }
    if total * #peers > MAX_SCHEDULE * 10 or total > MAX_SCHEDULE then
        return sched
    end
    -- Smooth weighted round-robin (as nginx does it): each step every peer gains its weight,
    -- the richest is picked and pays the total.
    local current, slots = {}, {}
    for i = 1, #peers do
        current[i] = 0
    end
    for step = 1, total do
        local best = 1
        for i = 1, #peers do
            current[i] = current[i] + weights[i]
            if current[i] > current[best] then
                best = i
            end
        end
        current[best] = current[best] - total
        slots[step] = best
    end
    sched.slots = slots
    return sched
end

-- The peer index at position `pos` (0-based, any size) of the schedule.
local function slot(sched, pos)
    pos = pos % sched.total
    if sched.slots then
        return sched.slots[pos + 1]
    end
    -- Fallback: a stride co-prime with the total spreads the cycle; each peer still gets exactly
    -- its weight's share of every cycle. Binary search in the cumulative weights.
    local stride = math.floor(sched.total * 0.618) + 1
    while gcd(stride, sched.total) ~= 1 do
        stride = stride + 1
    end
    local x = (pos * stride) % sched.total
    local lo, hi = 1, #sched.cum
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if sched.cum[mid] > x then
            hi = mid
        else
            lo = mid + 1
        end
    end
    return lo
end

local function peer_key(name, p)
    return "down:" .. name .. ":" .. p.address .. ":" .. p.port
end

local function is_down(name, p)
    return RUNTIME:get(peer_key(name, p)) ~= nil
end

-- The schedule position of this attempt: the client's hash when sticky, else the next turn.
local function position(name, svc)
    local sticky = svc.sticky
    if sticky == "ip_hash" or sticky == "hash" then
        local addr = ngx.var.remote_addr or ""
        if sticky == "ip_hash" then
            addr = addr:match("^(%d+%.%d+%.%d+)%.%d+$") or addr
        end
        return ngx.crc32_long(addr)
    end
    local n, err = RUNTIME:incr("rr:" .. name, 1, 0)
    if not n then
        ngx.log(ngx.WARN, "swarmgate: round-robin counter for ", name, ": ", err)
        return math.random(0, 2 ^ 30)
    end
    return n - 1
end

-- The first untried peer of `list` (walking from `from`), skipping peers marked down if `up`.
local function first_untried(name, list, tried, from, up)
    local n = #list
    for k = 0, n - 1 do
        local p = list[(from + k - 1) % n + 1]
        if not tried[p] and not (up and is_down(name, p)) then
            return p
        end
    end
end

-- The peer of the first attempt of a request.
local function first_pick(name, svc, tried)
    local actives = svc.actives
    if #actives > 0 then
        if not svc.schedule then
            svc.schedule = build_schedule(actives)
        end
        local i = slot(svc.schedule, position(name, svc))
        local p = actives[i]
        if not is_down(name, p) then
            return p
        end
        return first_untried(name, actives, tried, i, true)
            or first_untried(name, svc.backups, tried, 1, true)
            or p
    end
    return first_untried(name, svc.backups, tried, 1, true)
        or first_untried(name, svc.backups, tried, 1, false)
end

-- A retry: an untried peer, actives before backups, peers not marked down first.
local function next_pick(name, svc, tried)
    return first_untried(name, svc.actives, tried, 1, true)
        or first_untried(name, svc.backups, tried, 1, true)
        or first_untried(name, svc.actives, tried, 1, false)
        or first_untried(name, svc.backups, tried, 1, false)
end

local function no_peer(name, why)
    ngx.log(ngx.WARN, "swarmgate: ", name, ": ", why, "; answering 502")
    local ok, err = ngx_balancer.set_current_peer(NO_PEER)
    if not ok then
        ngx.log(ngx.ERR, "swarmgate: set_current_peer(no peer): ", err)
    end
end

local function host(p)
    if p.address:find(":", 1, true) then
        return "[" .. p.address .. "]"
    end
    return p.address
end

-- The schedule's pure parts, for the Lua unit tests (templater/tests/lua/unit.lua).
M._schedule = { build = build_schedule, slot = slot }

-- balancer_by_lua entry point for the upstream of service `name`.
function M.balance(name)
    local ctx = ngx.ctx
    local req = ctx.swarmgate
    local peer
    if not req then
        local svc, why = state.service(name)
        if not svc then
            ctx.swarmgate = { name = name, tried = {} } -- counted as failed (swarmgate.traffic)
            return no_peer(name, why)
        end
        svc = ctx.swarmgate_pin or svc
        req = { name = name, svc = svc, tried = {} }
        ctx.swarmgate = req
        local total = #svc.actives + #svc.backups
        if total == 0 then
            return no_peer(name, "no peer")
        end
        if total > 1 then
            local ok, err = ngx_balancer.set_more_tries(total - 1)
            if not ok then
                ngx.log(ngx.WARN, "swarmgate: set_more_tries: ", err)
            end
        end
        peer = first_pick(name, svc, req.tried)
    else
        if req.last then
            RUNTIME:set(peer_key(name, req.last), true, FAIL_TIMEOUT)
        end
        peer = next_pick(name, req.svc, req.tried)
        if not peer then
            return no_peer(name, "every peer was tried")
        end
    end
    req.tried[peer] = true
    req.last = peer
    local ok, err = ngx_balancer.set_current_peer(host(peer), peer.port)
    if not ok then
        ngx.log(ngx.ERR, "swarmgate: set_current_peer ", peer.address, ":", peer.port, ": ", err)
    end
end

return M
