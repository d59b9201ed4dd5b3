-- wrk script of tests/bench/harness.sh: prints one machine-readable line at the
-- end of a run (requests, duration, p50/p99/p99.9 in µs, the error counts), and
-- when WRK_BODY_BYTES is set, makes every request a POST of that many bytes.
local body_bytes = tonumber(os.getenv("WRK_BODY_BYTES") or "0")
if body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
  local e = summary.errors
  -- status: answers with a status of 400 or more (wrk counts 2xx and 3xx as good)
  io.write(string.format(
    "HARNESS requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f p999_us=%.0f connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect, e.read, e.write, e.status, e.timeout))
end
