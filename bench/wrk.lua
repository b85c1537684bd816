-- wrk.lua: the request make bench's accept step sends (wrk -s bench/wrk.lua URL).
-- Environment: BENCH_MODE call (default: POST /v1/calls with one ~1 KB instruction) |
-- transparent (POST /v1/async/<percent-encoded target>/bench with a ~1 KB body) |
-- batch (POST /v1/calls with an array of BENCH_BATCH instructions, default 100) |
-- raw (POST /hook with a ~1 KB JSON body: what the drainer sends, for the nginx target itself);
-- BENCH_TARGET the URL the calls are for; BENCH_KEY an API key sent as a bearer token (unset:
-- none). done() prints one line "wrk_result rps=... p50_ms=... p99_ms=... non2xx=..." for
-- bench/run.sh, besides wrk's own summary.
local mode = os.getenv("BENCH_MODE") or "call"
local target = os.getenv("BENCH_TARGET") or "http://127.0.0.1:9/bench"
local key = os.getenv("BENCH_KEY")
local batch = tonumber(os.getenv("BENCH_BATCH") or "100")
local pad_to = 1024

local function instruction(seq)
	local head = string.format('{"target": "%s", "method": "POST", '
		.. '"headers": {"Content-Type": "application/json", "X-Bench": "wrk"}, '
		.. '"correlation_id": "bench-%d", "body": {"order": %d, "pad": "', target, seq, seq)
	local pad = pad_to - #head - 3
	if pad < 0 then pad = 0 end
	return head .. string.rep("x", pad) .. '"}}'
end

local function urlencode(s)
	return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key and key ~= "" then
	wrk.headers["Authorization"] = "Bearer " .. key
end
if mode == "transparent" then
	wrk.path = "/v1/async/" .. urlencode(target) .. "/bench?src=wrk"
	wrk.headers["Async-Correlation-Id"] = "bench-transparent"
	local head = '{"order": 1, "pad": "'
	wrk.body = head .. string.rep("x", pad_to - #head - 2) .. '"}'
elseif mode == "raw" then
	wrk.path = "/hook"
	local head = '{"order": 1, "pad": "'
	wrk.body = head .. string.rep("x", pad_to - #head - 2) .. '"}'
elseif mode == "batch" then
	wrk.path = "/v1/calls"
	local parts = {}
	for i = 1, batch do parts[i] = instruction(i) end
	wrk.body = "[" .. table.concat(parts, ",") .. "]"
else
	wrk.path = "/v1/calls"
	wrk.body = instruction(1)
end

function done(summary, latency, requests)
	local secs = summary.duration / 1e6
	local e = summary.errors
	io.write(string.format("wrk_result requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f "
		.. "max_ms=%.2f non2xx=%d sock_errors=%d\n",
		summary.requests, summary.requests / secs, latency:percentile(50) / 1000,
		latency:percentile(99) / 1000, latency.max / 1000, e.status,
		e.connect + e.read + e.write + e.timeout))
end
