"""Load test of `tts serve` on loopback: start time, TTFB, concurrent clients, memory.

Starts `python -m tts_cli serve` (the bundled es_base) on a free port in a child process and:
1. start time: until GET /health answers;
2. baseline, one client: --baseline sequential short requests (latency, time to first byte) and
   one long multi-sentence text (TTFB against the whole response: what streaming buys);
3. --clients concurrent clients, one request each (all should succeed);
4. --requests requests from --clients clients (bounded by --max-seconds), reporting answered requests/s,
   p50/p95 latency and TTFB of the answered ones, requests by status (only 503s are expected, under
   overload; a client that gets one waits the Retry-After it was told, as a polite client does);
5. the server's resident memory (VmRSS) after start, after the first request and at the end,
   and that it still answers /health and a speech request.

Clients use the standard library (http.client, threads). Everything stays on 127.0.0.1.
Run it with `nice` on a shared machine and read the timings against the baseline of the same run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

SHORT = ["Hola, ¿qué tal?", "Buenos días a todos.", "Mañana iremos al parque.", "¿Dónde está la estación?"]
LONG = ("Hola, ¿qué tal? Hoy hace un día muy bonito en la ciudad. Mañana iremos al parque con los niños. "
        "Después comeremos en casa de los abuelos. Por la tarde veremos una película antigua.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def speak(port: int, text: str, voice: str | None = None, timeout: float = 300) -> dict:
    """One POST /v1/audio/speech: status, latency, time to first byte, bytes (errors as status 0)."""
    body = json.dumps({"model": "tts-1", "input": text, **({"voice": voice} if voice else {})})
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/audio/speech", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        first = resp.read(1)
        ttfb = time.perf_counter() - t0
        rest = resp.read()
        conn.close()
        return {"status": resp.status, "latency": time.perf_counter() - t0, "ttfb": ttfb,
                "bytes": len(first) + len(rest), "retry_after": float(resp.getheader("Retry-After") or 1)}
    except OSError as e:
        return {"status": 0, "latency": time.perf_counter() - t0, "ttfb": float("nan"), "bytes": 0, "error": str(e)}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(name: str, results: list[dict], wall: float) -> str:
    ok = [r for r in results if r["status"] == 200]
    codes: dict[int, int] = {}
    for r in results:
        codes[r["status"]] = codes.get(r["status"], 0) + 1
    lat, ttfb = [r["latency"] for r in ok], [r["ttfb"] for r in ok]
    return (f"{name:<34} {len(results):>4} req  {len(ok) / wall:>6.2f} ok/s  latency p50 {pct(lat, 50):6.2f} "
            f"p95 {pct(lat, 95):6.2f} s  TTFB p50 {pct(ttfb, 50):6.2f} p95 {pct(ttfb, 95):6.2f} s  "
            f"statuses {dict(sorted(codes.items()))}")


def run_clients(port: int, clients: int, total: int, max_seconds: float) -> tuple[list[dict], float]:
    """`total` requests shared by `clients` threads; none starts after `max_seconds`."""
    results: list[dict] = []
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.perf_counter() + max_seconds
    gate = threading.Barrier(clients)

    def client():
        gate.wait()
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            r = speak(port, SHORT[i % len(SHORT)])
            with lock:
                results.append(r)
            if r["status"] == 503:  # a polite client waits as told (Retry-After), at most 5 s
                time.sleep(min(5.0, r.get("retry_after", 1.0)))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--baseline", type=int, default=5, help="sequential single-client requests")
    ap.add_argument("--max-seconds", type=float, default=600, help="no request starts after this (per phase)")
    ap.add_argument("--max-queue", type=int, default=None, help="pass --max-queue to the server")
    ap.add_argument("--workers", type=int, default=None, help="pass --workers to the server")
    args = ap.parse_args()
    args.clients = max(1, min(args.clients, 64))  # bounded: this is a loopback test, not a flood
    args.requests = max(1, min(args.requests, 2000))

    port = free_port()
    cmd = [sys.executable, "-m", "tts_cli", "serve", "--port", str(port)]
    if args.max_queue:
        cmd += ["--max-queue", str(args.max_queue)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited: {server.stdout.read()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        start_s = time.perf_counter() - t0
        health = json.loads(_get(port, "/health"))
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; server pid {server.pid}, "
              f"{health['workers']} worker(s), max queue {health['max_queue']}")
        print(f"start: /health answered {start_s:.2f} s after launch; RSS {rss_mb(server.pid):.0f} MB")

        first = speak(port, SHORT[0], voice="es_base")
        rss_first = rss_mb(server.pid)
        print(f"first request: status {first['status']}, {first['latency']:.2f} s, {first['bytes']} bytes; "
              f"RSS {rss_first:.0f} MB")
        t = time.perf_counter()
        base = [speak(port, SHORT[i % len(SHORT)]) for i in range(args.baseline)]
        print(summary("baseline: 1 client, sequential", base, time.perf_counter() - t))
        long = speak(port, LONG)
        print(f"long text ({len(LONG)} chars, 5 sentences, streamed): TTFB {long['ttfb']:.2f} s, whole response "
              f"{long['latency']:.2f} s ({long['bytes'] / 2 / 22050:.1f} s of audio); RSS {rss_mb(server.pid):.0f} MB")

        res, wall = run_clients(port, args.clients, args.clients, args.max_seconds)
        print(summary(f"{args.clients} concurrent clients, 1 each", res, wall) + f"  RSS {rss_mb(server.pid):.0f} MB")
        res, wall = run_clients(port, args.clients, args.requests, args.max_seconds)
        print(summary(f"{args.requests} requests, {args.clients} clients", res, wall))
        others = [r for r in res if r["status"] not in (200, 503)]
        rss_end = rss_mb(server.pid)
        alive = server.poll() is None and json.loads(_get(port, "/health"))["status"] == "ok"
        after = speak(port, SHORT[1])
        print(f"memory: RSS {rss_first:.0f} MB after the first request, {rss_end:.0f} MB at the end "
              f"({100 * (rss_end - rss_first) / rss_first:+.1f} %)")
        print(f"server alive: {alive}; a request after the load: status {after['status']}; "
              f"errors other than 503: {len(others)}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end (other processes share this CPU)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


if __name__ == "__main__":
    main()
