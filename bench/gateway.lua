-- wrk script for bench/gateway.sh: POST /api/v1/seckill where every request is a distinct
-- (user, activity) pair, so every request reaches Redis and succeeds (stock is huge).
-- Env: TOKENS (file, one JWT per line), ACTIVITIES (count; activities are b0..b<n-1>).
local tokens = {}
local activities = tonumber(os.getenv("ACTIVITIES") or "100")
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  nthreads = #threads > 0 and #threads or tonumber(os.getenv("THREADS") or "1")
  i = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  -- Global request number: threads interleave, so no pair repeats across threads.
  local n = i * (tonumber(os.getenv("THREADS") or "1")) + (tid or 0)
  i = i + 1
  local u = n % #tokens
  local a = math.floor(n / #tokens) % activities
  wrk.headers["Authorization"] = "Bearer " .. tokens[u + 1]
  wrk.body = '{"activity_id":"b' .. a .. '","product_id":"p","quantity":1}'
  return wrk.format()
end

function done(summary, latency, requests)
  io.write(string.format("PCTL %.2f %.2f %.2f\n", latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
