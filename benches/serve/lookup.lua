-- wrk script: look customers up by e-mail, cycling through a file of URL-encoded addresses.
--   wrk -t2 -c32 -d30s --latency -s lookup.lua http://127.0.0.1:8080 -- emails.txt
local emails = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    emails[#emails + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#emails)
end

function request()
  i = i % #emails + 1
  return wrk.format("GET", "/api/customers?email=" .. emails[i])
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
