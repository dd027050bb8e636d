-- Shared by post.lua and refresh.lua: `write_summary` sums the named per-thread counters (each
-- wrk thread has its own Lua state, read with thread:get) and prints one `WRK_JSON {...}` line
-- that bench/harness.py parses. Loaded with dofile(BENCH_LUA_DIR .. "/summary.lua").

function write_summary(threads, summary, latency, counters)
  local extra = ""
  for _, name in ipairs(counters) do
    local total = 0
    for _, thread in ipairs(threads) do
      total = total + (thread:get(name) or 0)
    end
    extra = extra .. string.format(',"%s":%d', name, total)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d%s}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout, extra))
end
