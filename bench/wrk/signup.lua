-- POST /users/signup with a fresh address every time: run id, thread id and
-- a counter make it unique, so every answer should be 201.
-- args: RUN_ID THREADS PASSWORD
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local run_id, password = "check", "check" -- init runs in the threads only
local n = 0

function init(args)
  run_id = args[1]
  password = args[3]
end

function request()
  n = n + 1
  local body = string.format(
    '{"email":"s%s-%d-%d@bench.example.com","password":"%s","confirmPassword":"%s"}',
    run_id, thread_id or 0, n, password, password)
  return wrk.format("POST", "/users/signup", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body) count_busy(status) end
