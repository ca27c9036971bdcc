-- Shared by every scenario: reads the per-thread input file and prints the
-- run's summary as one JSON line that bench/load.py parses.
--
-- Scenario scripts are run as `wrk -s SCENARIO.lua URL -- FILE THREADS` and
-- start with `dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")`.

local next_thread_id = 0
local threads = {}

-- Numbers the threads, so each one takes its own share of the input lines.
function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  threads[#threads + 1] = thread
end

-- Counts `503` answers (the hashing queue's `BUSY`: shed load, not a
-- failure) apart from the other non-2xx ones. Only the scenarios that
-- hash (login, signup) call it from a `response` function: one costs wrk
-- time on every answer, which would slow ping and me.
busy = 0
function count_busy(status)
  if status == 503 then busy = busy + 1 end
end

-- The lines of `path` that belong to this thread (line i goes to thread i mod n).
function thread_lines(path, threads)
  local lines = {}
  local i = 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % threads == thread_id then
        lines[#lines + 1] = line
      end
      i = i + 1
    end
  end
  if #lines == 0 then
    error("no input lines for thread " .. thread_id .. " in " .. path)
  end
  return lines
end

-- A `request` function that answers with `requests` in turn (filled by the
-- scenario's `init`). Empty only in wrk's main state, which calls it once
-- as a check.
function in_turn(requests)
  local n = 0
  return function()
    if #requests == 0 then return wrk.format() end
    n = n + 1
    return requests[(n % #requests) + 1]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local shed = 0
  for _, thread in ipairs(threads) do shed = shed + (thread:get("busy") or 0) end
  io.write(string.format(
    '\nSESAME_BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"non_2xx":%d,"busy_503":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, shed, e.connect, e.read, e.write, e.timeout))
end
