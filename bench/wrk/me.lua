-- GET /users/me with valid access tokens of many sessions, taken in turn.
-- args: TOKENS_FILE THREADS
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local requests = {}

function init(args)
  for _, token in ipairs(thread_lines(args[1], tonumber(args[2]))) do
    requests[#requests + 1] =
      wrk.format("GET", "/users/me", { ["Authorization"] = "Bearer " .. token })
  end
end

request = in_turn(requests)
