-- swarmgate.control: the control endpoint, served only by the control listener (a unix socket or
-- loopback port, see dataplane.conf.j2), never by a public server.
--   PUT /state  whole document -> 200 {"version":N} | 400 {"error":...} | 409 {"error":"stale",
--               "version":HELD}; nginx itself answers 413 above client_max_body_size.
--   GET /state  -> 200 the held document ({"version":null,"services":{}} before the first one).
--   GET /traffic -> 200 the traffic figures since nginx started (swarmgate.traffic).
--   Any other path 404, any other method 405.

local cjson = require "cjson.safe"
local state = require "swarmgate.state"
local traffic = require "swarmgate.traffic"
local validate = require "swarmgate.validate"

local M = {}

local function reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx.say(body)
    return ngx.exit(status)
end

local function error_reply(status, what)
    return reply(status, cjson.encode({ error = what }))
end

-- The request body as a string, also when nginx buffered it to a file.
local function read_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then
        return body
    end
    local path = ngx.req.get_body_file()
    if not path then
        return ""
    end
    local f, err = io.open(path, "rb")
    if not f then
        return nil, err
    end
    body = f:read("*a")
    f:close()
    return body
end

local function put_state()
    local body, err = read_body()
    if not body then
        return error_reply(500, "cannot read the body: " .. tostring(err))
    end
    local doc, why = validate.parse(body)
    if not doc then
        return error_reply(400, why)
    end
    local outcome, detail = state.put(doc)
    if outcome == "stale" then
        return reply(409, string.format('{"error":"stale","version":%d}', detail))
    elseif not outcome then
        return error_reply(503, detail)
    end
    ngx.log(ngx.INFO, "swarmgate: state version ", doc.version, " ", outcome)
    return reply(200, string.format('{"version":%d}', detail))
end

local function get_state()
    return reply(200, state.held_json() or '{"version":null,"services":{}}')
end

-- content_by_lua entry point of the control server.
function M.handle()
    local uri, method = ngx.var.uri, ngx.req.get_method()
    if uri == "/traffic" then
        if method ~= "GET" then
            ngx.header["Allow"] = "GET"
            return error_reply(405, "method not allowed")
        end
        return reply(200, traffic.json())
    end
    if uri ~= "/state" then
        return error_reply(404, "not found")
    end
    if method == "PUT" then
        return put_state()
    elseif method == "GET" then
        return get_state()
    end
    ngx.header["Allow"] = "GET, PUT"
    return error_reply(405, "method not allowed")
end

return M
