-- POST /users/login with the right password, for a pool of active users
-- taken in turn (a correct login resets the failure count: no lockout).
-- args: EMAILS_FILE THREADS PASSWORD
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local requests = {}

function init(args)
  local password = args[3]
  for _, email in ipairs(thread_lines(args[1], tonumber(args[2]))) do
    local body = string.format('{"email":"%s","password":"%s"}', email, password)
    requests[#requests + 1] = wrk.format("POST", "/users/login",
      { ["Content-Type"] = "application/json" }, body)
  end
end

request = in_turn(requests)

function response(status, headers, body) count_busy(status) end
