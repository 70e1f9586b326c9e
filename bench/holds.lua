-- wrk script: every request holds one seat nobody has asked for yet in this run.
-- args: api_key run_id threads seats_per_row rows showtime_id [showtime_id ...]
-- Seat g (0-based, over all threads) is showtime floor(g / per_showtime), row floor(i / seats_per_row)
-- as a letter, number (i mod seats_per_row) + 1, where i = g mod per_showtime.

local threads = {}
local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  api_key = args[1]
  run_id = args[2]
  nthreads = tonumber(args[3])
  seats_per_row = tonumber(args[4])
  rows = tonumber(args[5])
  showtimes = {}
  for i = 6, #args do
    showtimes[#showtimes + 1] = args[i]
  end
  per_showtime = seats_per_row * rows
  counter = 0
  statuses = {}
end

function request()
  local g = counter * nthreads + thread_id
  counter = counter + 1
  local st = math.floor(g / per_showtime)
  if st >= #showtimes then
    -- Out of fresh seats: these show up as 409s, and the harness reports them as a failure.
    st = #showtimes - 1
  end
  local i = g % per_showtime
  local label = string.char(65 + math.floor(i / seats_per_row)) .. tostring(i % seats_per_row + 1)
  local body = string.format(
    '{"showtime_id":"%s","seats":["%s"],"customer":{"email":"bench%d@example.com","phone":"+919800000001"}}',
    showtimes[st + 1], label, g)
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run_id .. "-" .. g,
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(totals) do
    parts[#parts + 1] = string.format('"%s":%d', tostring(status), n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d},' ..
    '"statuses":{%s}}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), table.concat(parts, ",")))
end
