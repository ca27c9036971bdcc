-- GET requests with bearer tokens, taken in turn from a file of lines
-- "PATH<TAB>TOKEN" (bench/scale.py: admin searches, referral lists).
-- args: FILE THREADS
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

local requests = {}

function init(args)
  for _, line in ipairs(thread_lines(args[1], tonumber(args[2]))) do
    local path, token = line:match("^([^\t]+)\t(.+)$")
    requests[#requests + 1] =
      wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
  end
end

request = in_turn(requests)
