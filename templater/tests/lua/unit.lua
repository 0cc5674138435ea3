-- Unit tests of the Lua data plane's pure parts (swarmgate.validate, the balancer's schedule,
-- the traffic buckets),
-- run inside a real nginx by content_by_lua_file (lua_plane_nginx.rs: lua_units_pass). Answers
-- "ok <n>" or one failure a line.

local cjson = require "cjson.safe"
local validate = require "swarmgate.validate"
local schedule = require("swarmgate.balancer")._schedule
local traffic = require "swarmgate.traffic"

local failures, checks = {}, 0

local function check(cond, what)
    checks = checks + 1
    if not cond then
        failures[#failures + 1] = what
    end
end

-- validate ---------------------------------------------------------------------------------------

local function doc_with(peer_fields)
    local p = { id = "a", address = "10.0.0.1", port = 80, weight = 1, backup = false }
    for k, v in pairs(peer_fields) do
        p[k] = v
    end
    return { version = 1, services = { app = { peers = { p } } } }
end

local peers_cases = {
    { {}, true },
    { { address = "fd00::4" }, true },
    { { address = "::" }, true },
    { { address = "1:2:3:4:5:6:7:8" }, true },
    { { address = "1:2:3:4:5:6:7::" }, true },
    { { address = "::ffff:192.0.2.1" }, true },
    { { address = "1:2:3:4:5:6:1.2.3.4" }, true },
    { { address = "1:2:3:4:5:6:7:1.2.3.4" }, false },
    { { address = "1.2.3.4::" }, false },
    { { address = "12345::" }, false },
    { { address = ":1::" }, false },
    { { address = "1:::2" }, false },
    { { address = "g::1" }, false },
    { { address = "localhost" }, false },
    { { address = "10.0.0.1:80" }, false },
    { { address = " 10.0.0.1" }, false },
    { { address = 167772161 }, false },
    { { port = 65535 }, true },
    { { port = 65536 }, false },
    { { port = "80" }, false },
    { { weight = 102400 }, true },
    { { weight = 102401 }, false },
    { { weight = -1 }, false },
    { { backup = true }, true },
    { { backup = 1 }, false },
    { { color = "green" }, true },
    { { color = string.rep("c", 65) }, false },
    { { color = "bad colour" }, false },
    { { id = string.rep("i", 256) }, true },
    { { id = string.rep("i", 257) }, false },
    { { id = 7 }, false },
    { { extra = "ignored" }, true },
}
for i, case in ipairs(peers_cases) do
    local clean, err = validate.document(doc_with(case[1]))
    check((clean ~= nil) == case[2], "peer case " .. i .. ": " .. tostring(err))
end

local too_many = {}
for i = 1, 1025 do
    too_many[i] = { id = "p", address = "10.0.0.1", port = i, weight = 1, backup = false }
end
check(not validate.document({ version = 1, services = { app = { peers = too_many } } }),
    "1025 peers are refused")
check(validate.document({ version = 1, services = { ["a.b-c_9"] = { peers = {} } } }),
    "a name with . - _")
check(not validate.document({ version = 1, services = { ["-a"] = { peers = {} } } }),
    "a name starting with -")
check(not validate.document({ version = 1, services = { [string.rep("n", 129)] = { peers = {} } } }),
    "a 129-character name")
check(not validate.document({ version = 1, services = { app = { sticky = "cookie", peers = {} } } }),
    "an unknown sticky mode")
check(not validate.document({ version = -1, services = {} }), "a negative version")
check(not validate.document({ version = 2 ^ 53 + 2, services = {} }), "a version above 2^53")
local _, err = validate.parse('{"version":1,"services":{"app":{"peers":[{}]}}}')
check(err and err:find("services.app: peers[0]: ", 1, true), "errors say where: " .. tostring(err))

-- validate: pinning --------------------------------------------------------------------------------

local function pinned(fields)
    local svc = { peers = {} }
    for k, v in pairs(fields) do
        svc[k] = v
    end
    return validate.document({ version = 1, services = { app = svc } })
end
local function gpeer(color)
    return { id = "g", address = "10.0.0.2", port = 81, weight = 1, backup = false, color = color }
end
local pin_cases = {
    { { preview = { green = { gpeer("green") }, blue = {} } }, true, "preview with an empty colour" },
    { { preview = cjson.null, canary_cookie = cjson.null }, true, "null pinning" },
    { { preview = {} }, true, "an empty preview object" },
    { { preview = { green = { gpeer("blue") } } }, false, "a peer under another colour" },
    { { preview = { green = { gpeer(nil) } } }, false, "a peer with no colour" },
    { { preview = { ["bad colour"] = {} } }, false, "a colour with a space" },
    { { preview = { [""] = {} } }, false, "an empty colour" },
    { { preview = { green = { gpeer("green") } } }, true, "one preview peer" },
    { { preview = { green = gpeer("green") } }, false, "peers not in an array" },
    { { preview = { gpeer("green") } }, false, "preview as an array" },
    { { preview = "green" }, false, "preview as a string" },
    { { preview = { green = { { id = "g", address = "host.example", port = 81, weight = 1,
                                backup = false, color = "green" } } } }, false, "a host name" },
    { { canary_cookie = "blue" }, true, "a cookie colour" },
    { { canary_cookie = "a;b" }, false, "a cookie colour with ;" },
    { { canary_cookie = true }, false, "a cookie colour that is not a string" },
}
for _, case in ipairs(pin_cases) do
    local clean, perr = pinned(case[1])
    check((clean ~= nil) == case[2], "pinning: " .. case[3] .. ": " .. tostring(perr))
end
local many = {}
for i = 1, 1025 do
    many[i] = { id = "p", address = "10.0.0.1", port = i, weight = 1, backup = false, color = "g" }
end
check(not pinned({ preview = { g = many } }), "1025 preview peers are refused")
local kept = pinned({ preview = { green = { gpeer("green") } }, canary_cookie = "blue" })
check(kept and kept.services.app.preview.green[1].port == 81
    and kept.services.app.canary_cookie == "blue", "the pinning is kept in the canonical form")

-- preview: the cookie parser --------------------------------------------------------------------

local cookie = require("swarmgate.preview")._cookie
check(cookie("a=1; swarmgate_app=green; b=2", "swarmgate_app") == "green", "cookie among others")
check(cookie("swarmgate_app2=green", "swarmgate_app") == nil, "a longer cookie name is not it")
check(cookie("xswarmgate_app=green", "swarmgate_app") == nil, "a prefixed cookie name is not it")
check(cookie(nil, "swarmgate_app") == nil, "no Cookie header")

-- schedule ---------------------------------------------------------------------------------------

local function peers_of(weights)
    local peers = {}
    for i, w in ipairs(weights) do
        peers[i] = { weight = w }
    end
    return peers
end

-- Every peer gets exactly its weight's share of one cycle, from any starting position.
local function exact(weights, from)
    local sched = schedule.build(peers_of(weights))
    local counts, g = {}, sched.total
    for pos = from, from + sched.total - 1 do
        local i = schedule.slot(sched, pos)
        counts[i] = (counts[i] or 0) + 1
    end
    local sum = 0
    for _, w in ipairs(weights) do
        sum = sum + w
    end
    for i, w in ipairs(weights) do
        if counts[i] ~= w * g / sum then
            return false, "peer " .. i .. " got " .. tostring(counts[i]) .. " of " .. g
        end
    end
    return true, sched
end

local ok, sched = exact({ 30, 30, 30, 10 }, 7)
check(ok and sched.total == 10 and sched.slots, "30/30/30/10 is a 10-slot smooth schedule")
ok = exact({ 9, 9, 2 }, 0)
check(ok, "9/9/2 exact")
-- Smooth: 5/1/1 never sends the heavy peer more than 4 in a row, even across cycles (an
-- ordered schedule would send 5, then 5 again after the other two).
local s511 = schedule.build(peers_of({ 5, 1, 1 }))
local run, longest = 0, 0
for pos = 0, 13 do
    run = schedule.slot(s511, pos) == 1 and run + 1 or 0
    longest = math.max(longest, run)
end
check(longest <= 4, "5/1/1 is smooth (longest run " .. longest .. ")")
-- Huge co-prime weights use the strided fallback: still exact per cycle, and spread.
local big = {}
for i = 1, 11 do
    big[i] = 10001 - i
end
local okb, sb = exact(big, 12345)
check(okb and sb.slots == nil, "11 co-prime weights near 10000: the fallback is exact")
if sb and sb.total then
    local same = 0
    for pos = 0, 999 do
        if schedule.slot(sb, pos) == schedule.slot(sb, pos + 1) then
            same = same + 1
        end
    end
    check(same < 200, "the fallback spreads: " .. same .. " repeats in 1000")
end

-- traffic: latency buckets ------------------------------------------------------------------------

for _, case in ipairs({ { 0, 1 }, { 0.001, 1 }, { 0.0011, 2 }, { 0.25, 8 }, { 1, 10 },
                        { 30, 14 }, { 30.001, nil } }) do
    local got = traffic._bucket(case[1])
    check(got == case[2], "bucket of " .. case[1] .. ": " .. tostring(got))
end
check(#traffic.BOUNDS == 14, "14 buckets, as LATENCY_BUCKETS")

if #failures == 0 then
    ngx.say("ok ", checks)
else
    ngx.say(table.concat(failures, "\n"))
end
