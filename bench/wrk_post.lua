-- wrk script for the benchmark: POST with the exchange's headers, rotating over a file of session
-- cookie values (one per line), and a machine-readable summary line at the end.
--   BENCH_SESSIONS  file of session values       BENCH_PROJECT  the Appwrite project id
--   BENCH_PATH      request path                  BENCH_MODE     "service" (cookie + X-CSRF) or
--                                                                "upstream" (Appwrite's own headers)
local mode = os.getenv("BENCH_MODE") or "service"
local sessions_file = os.getenv("BENCH_SESSIONS")
local project = os.getenv("BENCH_PROJECT")
local path = os.getenv("BENCH_PATH") or "/v1/realtime/token"
local prepared = {}
local count = 0
local next_index = 0

function init(args)
  for line in io.lines(sessions_file) do
    if line ~= "" then
      local headers = {}
      local body = nil
      if mode == "upstream" then
        headers["X-Appwrite-Project"] = project
        headers["X-Appwrite-Session"] = line
        headers["Content-Type"] = "application/json"
        body = '{"duration":60}'
      else
        headers["X-CSRF"] = "1"
        headers["Cookie"] = "a_session_" .. project .. "=" .. line
        headers["Content-Length"] = "0"
      end
      count = count + 1
      prepared[count] = wrk.format("POST", path, headers, body)
    end
  end
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
      .. '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
