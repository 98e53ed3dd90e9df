-- wrk script: POST one small chat completion per request, then print a JSON summary line.
-- Environment: WRK_MODEL (model name), WRK_KEY (bearer key), WRK_STREAM=1 for "stream": true.
-- The done() hook is what bench/load.py parses.
local model = os.getenv("WRK_MODEL") or "mock-gpt"
local stream = os.getenv("WRK_STREAM") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WRK_KEY") or "sk-bench")
wrk.body = '{"model":"' .. model .. '","max_tokens":16,' ..
  (stream and '"stream":true,"stream_options":{"include_usage":true},' or '') ..
  '"messages":[{"role":"user","content":"Say hello to the benchmark."}]}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
