-- swarmgate.preview: requests pinned to one colour, past the weights, on the Lua data plane's
-- virtual hosts (vhosts.conf.j2: access_by_lua and header_filter_by_lua of each public service).
--
-- * Preview (the service's state has `preview`): a request whose preview header names one of its
--   colours is pinned to that colour's peers (swarmgate.balancer balances over them only, retries
--   included), and answered `X-Swarmgate-Color: <colour>`; a colour with no peer answers 503
--   naming it, never another colour. Any other value of the header is ignored.
-- * Canary cookie (the state has `canary_cookie`, the active colour, only while canary > 0): a
--   request carrying `swarmgate_<service>=<colour>` for a non-active colour that has active peers
--   is pinned to them (the other colours stand by as backups); a request the weights sent to a
--   non-active colour gets that cookie (Path=/, HttpOnly). Without `canary_cookie` the cookie is
--   ignored.
-- Nothing read from the request is used but to look up what the state already holds.

local state = require "swarmgate.state"

local M = {}

-- The value of cookie `key` in a Cookie header, or nil.
local function cookie(header, key)
    if type(header) ~= "string" then
        return nil
    end
    local prefix = key .. "="
    for part in header:gmatch("[^;]+") do
        part = part:match("^%s*(.-)%s*$")
        if part:sub(1, #prefix) == prefix then
            return part:sub(#prefix + 1)
        end
    end
end
M._cookie = cookie

-- nginx's variable of request header `name` ("X-Swarmgate-Color" -> "http_x_swarmgate_color").
local function header_var(name)
    return "http_" .. name:lower():gsub("-", "_")
end

local vars = {} -- header name -> variable name

-- access_by_lua entry point for the virtual host of service `name`; `header`: --preview-header.
function M.access(name, header)
    local svc = state.service(name)
    if not svc then
        return -- the balancer answers 502
    end
    local ctx = ngx.ctx
    if svc.previews then
        local var = vars[header]
        if not var then
            var = header_var(header)
            vars[header] = var
        end
        local want = ngx.var[var]
        local view = type(want) == "string" and svc.previews[want]
        if view then
            if #view.actives == 0 then
                ngx.status = 503
                ngx.header["Content-Type"] = "text/plain"
                ngx.print("swarmgate: ", name, " has no healthy ", view.color, " instance")
                return ngx.exit(503)
            end
            ctx.swarmgate_pin = view
            ctx.swarmgate_header = header
            return
        end
    end
    local active = svc.canary_cookie
    if active then
        local key = "swarmgate_" .. name
        local c = cookie(ngx.var.http_cookie, key)
        local view = c and svc.cookie_views[c]
        if view then
            ctx.swarmgate_pin = view
        else
            ctx.swarmgate_cookie = { key = key, active = active }
        end
    end
end

-- header_filter_by_lua entry point: the preview's response header, the canary cookie.
function M.header_filter()
    local ctx = ngx.ctx
    local pin = ctx.swarmgate_pin
    if pin and pin.preview then
        ngx.header[ctx.swarmgate_header] = pin.color
        return
    end
    local want = ctx.swarmgate_cookie
    local req = ctx.swarmgate
    local color = want and req and req.last and req.last.color
    if not color or color == want.active then
        return
    end
    local set = want.key .. "=" .. color .. "; Path=/; HttpOnly"
    local old = ngx.header["Set-Cookie"]
    if type(old) == "table" then
        old[#old + 1] = set
        ngx.header["Set-Cookie"] = old
    elseif old then
        ngx.header["Set-Cookie"] = { old, set }
    else
        ngx.header["Set-Cookie"] = set
    end
end

return M
