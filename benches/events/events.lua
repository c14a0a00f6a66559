-- wrk script: post events to /api/events, each with a messageId of its own.
--   wrk -t1 -c8 -d30s --latency -s events.lua http://127.0.0.1:8080 -- BATCH WRITE_KEY
-- BATCH = 1 posts single events; more posts {"batch": [...]} of that many. The event text is
-- made once; a request only splices in its ids, so the generator costs little CPU beside
-- the server on the same cores.
local batch, key, prefix, n = 100, "", "", 0
local head, mid, tail = "", "", ""
local headers

function init(args)
  batch = tonumber(args[1]) or 100
  key = args[2] or ""
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  prefix = string.format("w%08x-", math.random(0, 0x7fffffff))
  head = '{"type":"track","event":"product_view","anonymousId":"v'
  mid = '","messageId":"' .. prefix
  tail = '","properties":{"product_id":"P17","price":19.5},"timestamp":"2026-12-01T10:00:00Z",' ..
    '"context":{"page":{"url":"https://shop.example/p/17"},"userAgent":"wrk"}}'
  headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
end

local function event()
  n = n + 1
  return head .. (n % 50000) .. mid .. n .. tail
end

function request()
  local body
  if batch == 1 then
    body = event()
  else
    local parts = {}
    for i = 1, batch do parts[i] = event() end
    body = '{"batch":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "/api/events", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors=%d non2xx=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
