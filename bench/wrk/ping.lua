-- GET /ping: the floor, a bare HTTP answer through the whole pipeline.
dofile(os.getenv("SESAME_BENCH_LUA") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/ping"
