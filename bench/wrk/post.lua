-- One JSON-RPC POST per request, as an MCP client sends it. The body and the Authorization
-- header come from the environment (BENCH_BODY, BENCH_AUTH) so one script serves every tool.
-- Every response body is checked for a JSON-RPC error or an isError tool result, because a
-- benchmark of error responses would be a fake result; `done` prints one JSON line.

dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = os.getenv("BENCH_PROTOCOL") or "2025-11-25"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread counters (each wrk thread has its own Lua state; `done` sums them).
checked = 0
rpc_errors = 0

function response(status, headers, body)
  checked = checked + 1
  if string.find(body, '"error":{', 1, true) or string.find(body, '"isError":true', 1, true) then
    rpc_errors = rpc_errors + 1
  end
end

function done(summary, latency, requests)
  write_summary(threads, summary, latency, {"checked", "rpc_errors"})
end
