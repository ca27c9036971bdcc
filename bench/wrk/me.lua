-- GET /users/me with valid access tokens of many sessions, taken in turn.
-- args: TOKENS_FILE THREADS
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local requests = {}
local n = 0

function init(args)
  for _, token in ipairs(thread_lines(args[1], tonumber(args[2]))) do
    requests[#requests + 1] =
      wrk.format("GET", "/users/me", { ["Authorization"] = "Bearer " .. token })
  end
end

function request()
  if #requests == 0 then return wrk.format() end -- wrk's check in its main state
  n = n + 1
  return requests[(n % #requests) + 1]
end
