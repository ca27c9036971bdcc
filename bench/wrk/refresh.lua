-- POST /users/token/refresh along token chains: every refresh spends its
-- token and answers the next one, which goes back into this thread's queue.
-- Each token is sent exactly once, so no answer is a reuse (grace window or
-- theft detection never come into play) and every answer should be 200.
-- The queue starts with more tokens than the thread has connections, so it
-- never runs dry while each connection has one request in flight.
-- args: REFRESH_TOKENS_FILE THREADS
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local queue = {}
local head, tail = 1, 0

local function push(token)
  tail = tail + 1
  queue[tail] = token
end

function init(args)
  for _, token in ipairs(thread_lines(args[1], tonumber(args[2]))) do
    push(token)
  end
end

function request()
  if head > tail then
    -- Only if answers stopped carrying tokens (errors): fail loudly, as a 4xx.
    return wrk.format("POST", "/users/token/refresh",
      { ["Content-Type"] = "application/json" }, '{"refreshToken":"queue-ran-dry"}')
  end
  local token = queue[head]
  queue[head] = nil
  head = head + 1
  return wrk.format("POST", "/users/token/refresh",
    { ["Content-Type"] = "application/json" },
    '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
  local next_token = body:match('"refreshToken"%s*:%s*"([^"]+)"')
  if next_token then
    push(next_token)
  end
end
