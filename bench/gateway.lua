-- wrk script for bench/gateway.sh and bench/stack.sh: POST /api/v1/seckill where every request
-- is a distinct (user, activity) pair, so every request reaches Redis and succeeds (stock is
-- huge).
-- Env: TOKENS (file, one JWT per line), ACTIVITIES (count; activities are b0..b<n-1>, product
-- "p"), or ACTIVITY_IDS ("id:product,id:product,...": activities created with `seckill
-- activity create`, whose product RESERVE checks), REQUESTS (how many distinct requests to
-- prepare; more than the run sends), ADMISSION (optional file, line n = the admission token
-- of request n, from `seckill-gateway-bench admission`: for gateways with
-- admission.required on).
--
-- The requests are formatted in init(), before wrk starts its clock: building each one in
-- request() cost wrk about half a core, taken from the gateway and Redis on the same machine.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  local list = {}
  local ids = os.getenv("ACTIVITY_IDS") or ""
  for pair in string.gmatch(ids, "[^,]+") do
    local id, product = pair:match("^([^:]+):(.*)$")
    list[#list + 1] = { id = id, product = product }
  end
  if #list == 0 then
    for a = 0, tonumber(os.getenv("ACTIVITIES") or "100") - 1 do
      list[#list + 1] = { id = "b" .. a, product = "p" }
    end
  end
  local activities = #list
  local admission = {}
  local admission_file = os.getenv("ADMISSION")
  if admission_file and admission_file ~= "" then
    for line in io.lines(admission_file) do
      admission[#admission + 1] = line
    end
  end
  local nthreads = tonumber(os.getenv("THREADS") or "1")
  local total = math.min(tonumber(os.getenv("REQUESTS") or "1000000"), #tokens * activities)
  -- This thread's share: global request numbers tid, tid + nthreads, ... so that no
  -- (user, activity) pair repeats across threads.
  reqs = {}
  local n = tid or 0
  while n < total do
    local u = n % #tokens
    local a = math.floor(n / #tokens) % activities
    local extra = ""
    if admission[n + 1] then
      extra = ',"admission":"' .. admission[n + 1] .. '"'
    end
    reqs[#reqs + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. tokens[u + 1],
    }, '{"activity_id":"' .. list[a + 1].id .. '","product_id":"' .. list[a + 1].product
      .. '","quantity":1' .. extra .. '}')
    n = n + nthreads
  end
  i = 0
end

function request()
  i = i + 1
  if i > #reqs then
    -- Out of prepared requests: repeating one would be refused (LIMIT) and void the run,
    -- which gateway.sh reports; raise REQUESTS.
    i = 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  io.write(string.format("PCTL %.2f %.2f %.2f\n", latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
