-- refresh_token grants on rotating chains. Refresh tokens rotate on every use, so each request
-- must present the token the previous answer of its chain returned. A wrk thread does not say
-- which connection a response belongs to, but it does not need to: the thread keeps a pool of
-- the chains' current tokens; `request` takes one out, `response` puts the successor back
-- before wrk asks for that connection's next request. With as many chains as connections the
-- pool never runs dry unless a response carried no new token, which is counted as an error
-- (and a request sent with an empty pool as `starved`), because a chain that breaks would
-- turn the rest of the run into a benchmark of error responses.
--
-- wrk 4.1 (Debian's) calls `request` once per thread before it connects and throws the result
-- away, which would silently drop one chain and leave one connection starved; so the caller
-- passes one spare chain per thread (an unused spare just stays in the pool).
--
-- Environment: BENCH_CHAINS (the chains' first refresh tokens, space separated: connections
-- + 1; run with -t1 so one pool holds them all), BENCH_CLIENT_ID (the public client).

dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local client_id = os.getenv("BENCH_CLIENT_ID")
local pool = {}
for token in string.gmatch(os.getenv("BENCH_CHAINS") or "", "%S+") do
  table.insert(pool, token)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

checked = 0
rpc_errors = 0
starved = 0

function request()
  local token = table.remove(pool)
  if token == nil then
    starved = starved + 1
    token = "chain-lost"
  end
  -- Tokens and client ids are [A-Za-z0-9_]: nothing to URL-encode.
  return wrk.format(nil, nil, nil,
    "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. token)
end

function response(status, headers, body)
  checked = checked + 1
  local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if status == 200 and token then
    table.insert(pool, token)
  else
    rpc_errors = rpc_errors + 1
  end
end

function done(summary, latency, requests)
  write_summary(threads, summary, latency, {"checked", "rpc_errors", "starved"})
end
