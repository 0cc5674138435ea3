-- swarmgate.state: the live state in the shared dict `swarmgate_state` (see
-- templates/lua/README.md). A validated document (swarmgate.validate) is stored whole or not at
-- all, never older than what is held; each service also gets its own key, so a worker decodes
-- only the services it serves, once per version.
--
-- Keys: "version" (number), "doc" (canonical JSON, for GET /state), "names:<v>" (the services
-- of version v, one a line), "svc:<v>:<name>" (one service's canonical JSON). A store writes the
-- new version's keys, then "doc", then "version", then deletes the previous version's keys: a
-- reader that sees a version finds its keys, or sees the version move on and reads again.

local cjson = require "cjson.safe"
local validate = require "swarmgate.validate"

local M = {}

local STATE = ngx.shared.swarmgate_state
local RUNTIME = ngx.shared.swarmgate_runtime -- "push_lock" (and the balancer's keys)

-- Encoding --------------------------------------------------------------------------------------

local function str(s)
    return cjson.encode(s) -- a JSON string literal
end

local function opt(s)
    return s == nil and "null" or str(s)
end

local function vstr(v)
    return string.format("%d", v)
end

local function encode_peers(out, peers)
    out[#out + 1] = "["
    for j, p in ipairs(peers) do
        out[#out + 1] = (j > 1 and "," or "") .. '{"id":' .. str(p.id) .. ',"address":'
            .. str(p.address) .. ',"port":' .. p.port .. ',"weight":' .. p.weight
            .. ',"backup":' .. tostring(p.backup) .. ',"color":' .. opt(p.color) .. "}"
    end
    out[#out + 1] = "]"
end

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    return keys
end

-- One validated service as canonical JSON. Written by hand because cjson 2.1.0 encodes empty
-- arrays as {} and prints numbers with 14 significant digits. `preview` and `canary_cookie`
-- only when set (the templater omits them when off).
local function encode_service(s)
    local out = { '{"sticky":', opt(s.sticky), ',"peers":' }
    encode_peers(out, s.peers)
    if s.preview then
        out[#out + 1] = ',"preview":{'
        for i, color in ipairs(sorted_keys(s.preview)) do
            out[#out + 1] = (i > 1 and "," or "") .. str(color) .. ":"
            encode_peers(out, s.preview[color])
        end
        out[#out + 1] = "}"
    end
    if s.canary_cookie then
        out[#out + 1] = ',"canary_cookie":' .. str(s.canary_cookie)
    end
    out[#out + 1] = "}"
    return table.concat(out)
end

local function sorted_names(doc)
    return sorted_keys(doc.services)
end

-- The canonical JSON of a validated document: services sorted by name.
function M.encode(doc)
    local out = { '{"version":', vstr(doc.version), ',"services":{' }
    for i, name in ipairs(sorted_names(doc)) do
        out[#out + 1] = (i > 1 and "," or "") .. str(name) .. ":"
            .. encode_service(doc.services[name])
    end
    out[#out + 1] = "}}"
    return table.concat(out)
end

-- Storing ---------------------------------------------------------------------------------------

local function svc_key(v, name)
    return "svc:" .. vstr(v) .. ":" .. name
end

-- The version held in the dict, or nil when nothing is held yet.
function M.held_version()
    return STATE:get("version")
end

-- The held document's canonical JSON, or nil.
function M.held_json()
    return STATE:get("doc")
end

-- Deletes the per-service keys of version `v`.
local function drop_version(v)
    local names = STATE:get("names:" .. vstr(v))
    if names then
        for name in names:gmatch("[^\n]+") do
            STATE:delete(svc_key(v, name))
        end
    end
    STATE:delete("names:" .. vstr(v))
end

-- Writes every key of `doc`'s version, "version" last; nil and an error when the dict is full
-- (then nothing of `doc` is left behind).
local function write(doc)
    local v, names = doc.version, sorted_names(doc)
    local ok, err = STATE:safe_set("names:" .. vstr(v), table.concat(names, "\n"))
    for _, name in ipairs(names) do
        if not ok then
            break
        end
        ok, err = STATE:safe_set(svc_key(v, name), encode_service(doc.services[name]))
    end
    if ok then
        ok, err = STATE:safe_set("doc", M.encode(doc))
    end
    if ok then
        ok, err = STATE:safe_set("version", v)
    end
    if not ok then
        drop_version(v)
        return nil, "the shared dict cannot hold the document (" .. tostring(err)
            .. "): raise dict_size"
    end
    return true
end

-- Stores `doc` unless it is not newer than what is held. Returns "stored", "same" or "stale"
-- with the version held afterwards, or nil and an error.
local function store(doc)
    local held = STATE:get("version")
    if held and doc.version < held then
        return "stale", held
    end
    if held and doc.version == held then
        return "same", held
    end
    local ok, err = write(doc)
    if not ok then
        return nil, err
    end
    if held then
        drop_version(held)
    end
    return "stored", doc.version
end

-- store() under a lock shared by all workers, so two pushes cannot interleave.
function M.put(doc)
    local deadline = ngx.now() + 5
    while not RUNTIME:add("push_lock", true, 10) do
        if ngx.now() > deadline then
            return nil, "another push holds the lock"
        end
        ngx.sleep(0.001)
        ngx.update_time()
    end
    local ok, outcome, detail = pcall(store, doc)
    RUNTIME:delete("push_lock")
    if not ok then
        return nil, tostring(outcome)
    end
    return outcome, detail
end

-- init_by_lua: loads the state file when it is newer than what the dict holds (the dict survives
-- a reload; a fresh nginx starts with only the file). A missing or bad file is logged, not fatal.
function M.load_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        ngx.log(ngx.NOTICE, "swarmgate: no state file yet (", err, ")")
        return
    end
    local text = f:read("*a")
    f:close()
    local doc, perr = validate.parse(text)
    if not doc then
        ngx.log(ngx.ERR, "swarmgate: state file ", path, " refused: ", perr)
        return
    end
    local outcome, detail = store(doc) -- init runs in the master alone: no lock needed
    if not outcome then
        ngx.log(ngx.ERR, "swarmgate: state file ", path, ": ", detail)
    else
        ngx.log(ngx.NOTICE, "swarmgate: state file version ", doc.version, ": ", outcome,
            " (held ", detail, ")")
    end
end

-- Reading (per worker) --------------------------------------------------------------------------

local ABSENT = {} -- cached "this version has no such service"
local cache = {}  -- name -> { version = v, svc = compiled service or ABSENT }

-- A decoded service with its peers split into actives and backups, in document order; and its
-- pinned views (swarmgate.preview), each shaped like a service for the balancer: `previews`
-- (colour -> only that colour's preview peers, no backups) and `cookie_views` (colour -> its
-- active peers first, the other actives as backups), the latter only while the canary cookie is
-- live.
local function compile(svc)
    svc.actives, svc.backups = {}, {}
    for _, p in ipairs(svc.peers) do
        local list = p.backup and svc.backups or svc.actives
        list[#list + 1] = p
    end
    if svc.sticky == cjson.null then
        svc.sticky = nil
    end
    if svc.canary_cookie == cjson.null then
        svc.canary_cookie = nil
    end
    if type(svc.preview) == "table" then
        svc.previews = {}
        for color, peers in pairs(svc.preview) do
            svc.previews[color] = { actives = peers, backups = {}, sticky = svc.sticky,
                                    color = color, preview = true }
        end
    end
    if svc.canary_cookie then
        svc.cookie_views = {}
        for _, p in ipairs(svc.actives) do
            local c = p.color
            if c and c ~= svc.canary_cookie then
                local v = svc.cookie_views[c]
                if not v then
                    v = { actives = {}, backups = {}, sticky = svc.sticky, color = c }
                    svc.cookie_views[c] = v
                end
                v.actives[#v.actives + 1] = p
            end
        end
        for _, v in pairs(svc.cookie_views) do
            for _, p in ipairs(svc.actives) do
                if p.color ~= v.color then
                    v.backups[#v.backups + 1] = p
                end
            end
        end
    end
    return svc
end

-- The held service `name` (decoded once per version per worker, with `actives`, `backups` and
-- room for the balancer's schedule), or nil and why.
function M.service(name)
    for _ = 1, 3 do -- a push between reading the version and the key: read again
        local version = STATE:get("version")
        if version == nil then
            return nil, "no state held"
        end
        local entry = cache[name]
        if entry and entry.version == version then
            if entry.svc == ABSENT then
                return nil, "the service is not in the state"
            end
            return entry.svc
        end
        local text = STATE:get(svc_key(version, name))
        if text then
            local svc = cjson.decode(text)
            if type(svc) == "table" then
                cache[name] = { version = version, svc = compile(svc) }
                return cache[name].svc
            end
        elseif STATE:get("version") == version then
            cache[name] = { version = version, svc = ABSENT }
            return nil, "the service is not in the state"
        end
    end
    return nil, "the state kept changing while it was read"
end

return M
