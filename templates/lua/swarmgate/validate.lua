-- swarmgate.validate: checks a state document completely (see templates/lua/README.md and the
-- contract): service names, IPv4/IPv6 literal addresses (no host names), ports, weights, backup,
-- colour, id, at most 1024 peers per service; the pinning: `preview` (null or colour -> peers
-- of that colour, at most 1024 in all) and `canary_cookie` (null or a colour). Answers the canonical document (known fields only)
-- or "<where>: <what>". Pure: no nginx state is touched.

local cjson = require "cjson.safe"

local M = {}

local MAX_PEERS = 1024
local MAX_VERSION = 2 ^ 53 -- JSON numbers are doubles: above this, versions stop being exact

local function is_int(v, lo, hi)
    return type(v) == "number" and v == math.floor(v) and v >= lo and v <= hi
end

local function is_ipv4(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then
        return false
    end
    for _, o in ipairs({ a, b, c, d }) do
        if #o > 3 or tonumber(o) > 255 or (#o > 1 and o:sub(1, 1) == "0") then
            return false
        end
    end
    return true
end

-- An IPv6 literal without brackets or zone: up to 8 groups of 1-4 hex digits, at most one "::",
-- optionally ending in an IPv4 address (counting as two groups).
local function is_ipv6(s)
    if #s < 2 or #s > 45 or not s:find(":", 1, true) or not s:match("^[%x:.]+$") then
        return false
    end
    local groups = 0
    local head, tail = s, nil
    local gap = s:find("::", 1, true)
    if gap then
        if s:find("::", gap + 1, true) then
            return false
        end
        head, tail = s:sub(1, gap - 1), s:sub(gap + 2)
    end
    for _, part in ipairs({ head, tail or "" }) do
        if part ~= "" then
            local fields = {}
            for f in (part .. ":"):gmatch("([^:]*):") do
                fields[#fields + 1] = f
            end
            for i, f in ipairs(fields) do
                if i == #fields and f:find(".", 1, true) and (part == tail or not gap) then
                    if not is_ipv4(f) then
                        return false
                    end
                    groups = groups + 2
                elseif f:match("^%x%x?%x?%x?$") then
                    groups = groups + 1
                else
                    return false
                end
            end
        end
    end
    if gap then
        return groups <= 7
    end
    return groups == 8
end

local function is_ip(s)
    return type(s) == "string" and (is_ipv4(s) or is_ipv6(s))
end

local function is_array(t)
    if type(t) ~= "table" then
        return false
    end
    local n = #t
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
            return false
        end
    end
    return true
end

local function valid_name(s)
    return type(s) == "string" and #s <= 128 and s:match("^[A-Za-z0-9][A-Za-z0-9._-]*$") ~= nil
end

local STICKY = { ip_hash = true, hash = true }

local function is_color(s)
    return type(s) == "string" and #s >= 1 and #s <= 64 and s:match("^[A-Za-z0-9._-]+$") ~= nil
end

local function is_object(t)
    return type(t) == "table" and not (is_array(t) and next(t) ~= nil)
end

-- One peer, or nil and what is wrong with it.
local function clean_peer(p)
    if type(p) ~= "table" or is_array(p) and next(p) ~= nil then
        return nil, "is not an object"
    end
    if type(p.id) ~= "string" or #p.id > 256 then
        return nil, "id: a string of at most 256 characters is required"
    end
    if not is_ip(p.address) then
        return nil, "address: an IPv4 or IPv6 literal is required (no host names)"
    end
    if not is_int(p.port, 1, 65535) then
        return nil, "port: an integer 1..65535 is required"
    end
    -- weights.rs gives at most 100 × the other colour's instances (1,024 peers at most).
    if not is_int(p.weight, 1, 102400) then
        return nil, "weight: an integer 1..102400 is required"
    end
    if type(p.backup) ~= "boolean" then
        return nil, "backup: a boolean is required"
    end
    local color = p.color
    if color == cjson.null or color == nil then
        color = nil
    elseif type(color) ~= "string" or #color > 64 or not color:match("^[A-Za-z0-9._-]*$") then
        return nil, "color: null or at most 64 characters [A-Za-z0-9._-] is required"
    end
    return {
        id = p.id, address = p.address, port = p.port, weight = p.weight,
        backup = p.backup, color = color,
    }
end

-- The preview map (colour -> peers of that colour), nil when absent, or nil and an error.
local function clean_preview(preview)
    if preview == nil or preview == cjson.null then
        return nil
    end
    if not is_object(preview) then
        return nil, "preview: null or an object is required"
    end
    local clean, count = {}, 0
    for color, list in pairs(preview) do
        if not is_color(color) then
            return nil, "preview: invalid colour " .. cjson.encode(tostring(color))
        end
        if not is_array(list) then
            return nil, "preview." .. color .. ": an array is required"
        end
        count = count + #list
        if count > MAX_PEERS then
            return nil, "preview: at most " .. MAX_PEERS .. " peers are allowed"
        end
        local peers = {}
        for i, p in ipairs(list) do
            local c, err = clean_peer(p)
            if c and c.color ~= color then
                c, err = nil, "color: the colour it is listed under is required"
            end
            if not c then
                return nil, "preview." .. color .. "[" .. (i - 1) .. "]: " .. err
            end
            peers[i] = c
        end
        clean[color] = peers
    end
    return clean
end

local function clean_service(s)
    if type(s) ~= "table" or is_array(s) and next(s) ~= nil then
        return nil, "is not an object"
    end
    local sticky = s.sticky
    if sticky == cjson.null or sticky == nil then
        sticky = nil
    elseif not STICKY[sticky] then
        return nil, 'sticky: null, "ip_hash" or "hash" is required'
    end
    if not is_array(s.peers) then
        return nil, "peers: an array is required"
    end
    if #s.peers > MAX_PEERS then
        return nil, "peers: at most " .. MAX_PEERS .. " are allowed"
    end
    local peers = {}
    for i, p in ipairs(s.peers) do
        local clean, err = clean_peer(p)
        if not clean then
            return nil, "peers[" .. (i - 1) .. "]: " .. err
        end
        peers[i] = clean
    end
    local preview, perr = clean_preview(s.preview)
    if perr then
        return nil, perr
    end
    local cookie = s.canary_cookie
    if cookie == cjson.null then
        cookie = nil
    elseif cookie ~= nil and not is_color(cookie) then
        return nil, "canary_cookie: null or a colour is required"
    end
    return { sticky = sticky, peers = peers, preview = preview, canary_cookie = cookie }
end

-- The canonical document (only known fields), or nil and "<where>: <what>".
function M.document(doc)
    if type(doc) ~= "table" or is_array(doc) and next(doc) ~= nil then
        return nil, "the document is not a JSON object"
    end
    if not is_int(doc.version, 0, MAX_VERSION) then
        return nil, "version: an integer 0..2^53 is required"
    end
    if type(doc.services) ~= "table" or is_array(doc.services) and next(doc.services) ~= nil then
        return nil, "services: an object is required"
    end
    local services = {}
    for name, s in pairs(doc.services) do
        if not valid_name(name) then
            return nil, "services: invalid service name " .. cjson.encode(tostring(name))
        end
        local clean, err = clean_service(s)
        if not clean then
            return nil, "services." .. name .. ": " .. err
        end
        services[name] = clean
    end
    return { version = doc.version, services = services }
end

-- Decodes and validates a JSON text.
function M.parse(text)
    local doc, err = cjson.decode(text)
    if doc == nil then
        return nil, "invalid JSON: " .. tostring(err)
    end
    return M.document(doc)
end

return M
