#!/usr/bin/env python3
"""Open-loop HTTP load: requests sent on a fixed schedule, latency counted from when each was due.

    python3 benches/openloop.py --url http://127.0.0.1:8080 --rate 2000 --connections 32 \
        --seconds 60 lookup --emails /tmp/panorama-bench-emails.txt
    python3 benches/openloop.py --url ... --rate 500 --connections 8 --seconds 30 \
        events --batch 100 --key pwk_...

Why not wrk: wrk is closed-loop. Each of its connections sends the next request when the last
answer arrives, so at saturation its latency is (connections ÷ throughput), whatever the
server does, and a server that stalls for 400 ms is simply sent fewer requests during the
stall ("coordinated omission"): the stall hardly shows in its p99. Here every connection has a
timetable (`rate` requests a second in all, spread evenly over the connections). A request
whose connection is still busy with an earlier, late answer is sent as soon as it is free, and
its latency is counted from when it was due, so a stall counts for every request it delayed.
The generator's own lateness (a timer firing late on a busy machine) is not counted: when the
connection was free, latency starts when the request was written.

Standard library only. Prints one line:
    rate=2000 seconds=60 sent=120000 ok=120000 errors=0 p50_ms=... p90_ms=... p99_ms=...
    p999_ms=... max_ms=... behind=N
`behind` counts requests sent more than 1 ms after they were due because their connection was
busy: more than a few means the server did not keep up with the rate, or too few connections.
"""

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import time
from urllib.parse import urlparse


def lookup_requests(args, worker):
    """GET /api/customers?email=... cycling through a file of URL-encoded addresses."""
    with open(args.emails) as f:
        emails = [line.strip() for line in f if line.strip()]
    rng = random.Random(worker)
    i = rng.randrange(len(emails))
    host = urlparse(args.url).netloc
    auth = f"Authorization: Bearer {args.token}\r\n" if args.token else ""

    def next_request():
        nonlocal i
        i = (i + 1) % len(emails)
        return (
            f"GET /api/customers?email={emails[i]} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n"
        ).encode()

    return next_request


def event_requests(args, worker):
    """POST /api/events: one event, or {"batch": [...]} of `batch` events, each with its own
    messageId (made of this process's id and a counter, so runs never repeat ids)."""
    host = urlparse(args.url).netloc
    prefix = f"o{os.getpid():x}-{worker}-{time.time_ns():x}-"
    n = 0
    tail = (
        '","properties":{"product_id":"P17","price":19.5},"timestamp":"2026-12-01T10:00:00Z",'
        '"context":{"page":{"url":"https://shop.example/p/17"},"userAgent":"openloop"}}'
    )

    def event():
        nonlocal n
        n += 1
        return (
            '{"type":"track","event":"product_view","anonymousId":"v'
            + str(n % 50000)
            + '","messageId":"'
            + prefix
            + str(n)
            + tail
        )

    def next_request():
        if args.batch == 1:
            body = event()
        else:
            body = '{"batch":[' + ",".join(event() for _ in range(args.batch)) + "]}"
        data = body.encode()
        return (
            f"POST /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {args.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode() + data

    return next_request


async def read_response(reader):
    """Reads one HTTP/1.1 response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def connection(url, first_due, interval, end, next_request, out):
    """One connection's timetable: a request due every `interval` seconds from `first_due`."""
    parsed = urlparse(url)
    loop = asyncio.get_running_loop()
    reader = writer = None
    due = first_due
    free_at = 0.0  # when this connection's last answer arrived
    while due < end:
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        request = next_request()
        sent = loop.time()
        behind = free_at - due > 0.001
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
            writer.write(request)
            status = await read_response(reader)
            ok = 200 <= status < 300
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            ok = False
            if writer is not None:
                writer.close()
            reader = writer = None
        done = loop.time()
        # Late because this connection was busy with an earlier answer: the server's delay,
        # counted from when the request was due. Late only because the timer fired late: ours.
        start = due if behind else sent
        out["timeline"].append((due, done - start))
        out["ok" if ok else "errors"] += 1
        out["behind"] += int(behind)
        free_at = done
        due += interval
    if writer is not None:
        writer.close()


def worker(job):
    args, index, rate, connections, start_wall = job
    make = lookup_requests if args.what == "lookup" else event_requests
    next_request = make(args, index)
    # Shared by this process's connections: one event loop, no two run at once.
    out = {"timeline": [], "ok": 0, "errors": 0, "behind": 0}

    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time() + max(0.0, start_wall - time.time())
        out["start"] = start
        end = start + args.seconds
        interval = connections / rate
        await asyncio.gather(
            *(
                connection(args.url, start + c / rate, interval, end, next_request, out)
                for c in range(connections)
            )
        )

    asyncio.run(main())
    return out


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests a second, in all")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--processes", type=int, default=2, help="generator processes (connections split)"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="per second p99 and max on stderr"
    )
    sub = parser.add_subparsers(dest="what", required=True)
    lookup = sub.add_parser("lookup", help="GET /api/customers?email=...")
    lookup.add_argument("--emails", required=True, help="file of URL-encoded e-mail addresses")
    lookup.add_argument("--token", default="", help="a read token, when the server has users")
    events = sub.add_parser("events", help="POST /api/events")
    events.add_argument("--batch", type=int, default=1, help="events a request (1: no batch)")
    events.add_argument("--key", required=True, help="a write key")
    args = parser.parse_args()

    processes = max(1, min(args.processes, args.connections))
    start_wall = time.time() + 0.5
    jobs = []
    for i in range(processes):
        conns = args.connections // processes + (1 if i < args.connections % processes else 0)
        jobs.append((args, i, args.rate * conns / args.connections, conns, start_wall))
    with multiprocessing.Pool(processes) as pool:
        results = pool.map(worker, jobs)
    latencies = sorted(latency for r in results for _, latency in r["timeline"])
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    behind = sum(r["behind"] for r in results)
    ms = lambda q: percentile(latencies, q) * 1000  # noqa: E731
    if args.timeline:
        # Per second of the schedule: requests due, and their p99 and max latency.
        seconds = {}
        for r in results:
            for due, latency in r["timeline"]:
                seconds.setdefault(int(due - r["start"]), []).append(latency)
        for second in sorted(seconds):
            values = sorted(seconds[second])
            print(
                f"second={second} due={len(values)} p99_ms={percentile(values, 0.99) * 1000:.2f} "
                f"max_ms={values[-1] * 1000:.2f}",
                file=sys.stderr,
            )
    print(
        f"rate={args.rate:g} seconds={args.seconds:g} sent={len(latencies)} ok={ok} errors={errors} "
        f"p50_ms={ms(0.5):.2f} p90_ms={ms(0.9):.2f} p99_ms={ms(0.99):.2f} p999_ms={ms(0.999):.2f} "
        f"max_ms={(latencies[-1] * 1000 if latencies else float('nan')):.2f} behind={behind}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
