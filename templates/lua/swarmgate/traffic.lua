-- swarmgate.traffic: per service and colour traffic figures, counted in the shared dict
-- `swarmgate_traffic` by `log_by_lua` (dataplane.conf.j2) and read by `GET /traffic` (control.lua).
--
-- * Only requests the balancer handled are counted (ngx.ctx.swarmgate, set by balancer.lua); the
--   colour is the one of the last peer tried, so a retried request counts for the peer that
--   answered. A request no peer answered (nginx's own 502/504: no peer, or every one failed)
--   counts as 5xx and also as `failed`; it goes to the last peer tried, or colour "" if none was.
-- * Per request: 4 dict:incr (5 when failed), no allocation beyond the key strings. Counters only
--   grow (since nginx started: the dict survives reloads, not restarts); a pair never seen has
--   no keys.
-- * Keys: "<service> <colour> <field>" (names and colours hold no space; the colour may be empty);
--   fields "r" (requests), "2xx".."5xx", "failed", "b1".."b14" (latency buckets, not cumulative)
--   and "s" (sum of seconds). "epoch" is set once per nginx start: a new one tells a reader that
--   the counters started again.

local cjson = require "cjson.safe"

local M = {}

local TRAFFIC = ngx.shared.swarmgate_traffic

-- Upper bounds in seconds, the templater's LATENCY_BUCKETS (runtime/src/metrics.rs). A request
-- slower than the last one is in no bucket (requests - sum of buckets).
local BOUNDS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 }
M.BOUNDS = BOUNDS

local CLASSES = { [2] = "2xx", [3] = "3xx", [4] = "4xx", [5] = "5xx" } -- 1xx: a request only

local function incr(key, by)
    local _, err = TRAFFIC:incr(key, by, 0)
    if err then
        ngx.log(ngx.WARN, "swarmgate: traffic counter ", key, ": ", err)
    end
end

-- The bucket (1..14) of `seconds`, or nil above the last bound.
local function bucket(seconds)
    for i = 1, #BOUNDS do
        if seconds <= BOUNDS[i] then
            return i
        end
    end
end
M._bucket = bucket

-- The last value of a comma-separated upstream variable ("0.002, 0.001 : 0.003"): the attempt
-- of the peer that answered.
local function last_of(v)
    return v and v:match("([^%s,:]+)%s*$")
end

-- init_by_lua: marks this nginx start (kept across reloads, like the counters).
function M.init()
    TRAFFIC:add("epoch", ngx.now())
end

-- log_by_lua entry point (http level: every request; those the balancer did not see are skipped).
function M.log()
    local req = ngx.ctx.swarmgate
    if not req then
        return
    end
    local peer = req.last
    local prefix = req.name .. " " .. (peer and peer.color or "") .. " "
    local status = ngx.status
    incr(prefix .. "r", 1)
    local class = CLASSES[math.floor(status / 100)]
    if class then
        incr(prefix .. class, 1)
    end
    -- No response header from the last attempt: nginx answered the request itself.
    if status >= 500 and last_of(ngx.var.upstream_header_time) == "-" then
        incr(prefix .. "failed", 1)
    end
    local seconds = tonumber(last_of(ngx.var.upstream_response_time))
        or tonumber(ngx.var.request_time) or 0
    local b = bucket(seconds)
    if b then
        incr(prefix .. "b" .. b, 1)
    end
    incr(prefix .. "s", seconds)
end

-- The figures as JSON: {"epoch":E,"services":{"app":{"blue":{"requests":N,"2xx":..,"3xx":..,
-- "4xx":..,"5xx":..,"failed":..,"buckets":[14 counts],"sum_seconds":S}}}}.
function M.json()
    local services = {}
    -- Only the control endpoint reads every key (it holds the dict's lock while it lists them).
    for _, key in ipairs(TRAFFIC:get_keys(0)) do
        local name, color, field = key:match("^(%S+) (%S*) (%S+)$")
        if name then
            local colors = services[name] or {}
            services[name] = colors
            local f = colors[color]
            if not f then
                f = { requests = 0, ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["5xx"] = 0,
                      failed = 0, buckets = {}, sum_seconds = 0 }
                for i = 1, #BOUNDS do
                    f.buckets[i] = 0
                end
                colors[color] = f
            end
            local v = TRAFFIC:get(key) or 0
            local b = tonumber(field:match("^b(%d+)$"))
            if b then
                f.buckets[b] = v
            elseif field == "r" then
                f.requests = v
            elseif field == "s" then
                f.sum_seconds = v
            elseif f[field] then
                f[field] = v
            end
        end
    end
    -- cjson encodes an empty table as {}.
    return cjson.encode({ epoch = TRAFFIC:get("epoch") or 0, services = services })
end

return M
