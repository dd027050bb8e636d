-- One JSON-RPC POST per request, as an MCP client sends it. The body and the Authorization
-- header come from the environment (BENCH_BODY, BENCH_AUTH) so one script serves every tool.
-- Every response body is checked for a JSON-RPC error or an isError tool result, because a
-- benchmark of error responses would be a fake result; `done` prints one JSON line.

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
responses = 0
rpc_errors = 0

function response(status, headers, body)
  responses = responses + 1
  if string.find(body, '"error":{', 1, true) or string.find(body, '"isError":true', 1, true) then
    rpc_errors = rpc_errors + 1
  end
end

function done(summary, latency, requests)
  local checked, errors = 0, 0
  for _, thread in ipairs(threads) do
    checked = checked + thread:get("responses")
    errors = errors + thread:get("rpc_errors")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"checked":%d,"rpc_errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout,
    checked, errors))
end
