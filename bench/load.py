"""A bounded load on the API, offline profile, on 127.0.0.1: concurrent clients asking /v1/search
and /v1/ask for a fixed time; errors, latency percentiles, throughput and the server's memory.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/load.py [--clients 50] [--seconds 60] [--rounds 1]
        [--out bench/out/load.json]

The server is a real `rag serve` process (one worker, as a 2-core machine runs it) over the sample
documents in data/. Memory is the server's resident set (VmRSS), sampled every second. With
--rounds N the load runs N back-to-back rounds of --seconds on the same server, and the report
gives the resident set at the end of each: a bound shows as ends that stop rising. The script
fails on any error, and (with 4 rounds or more) when the second half of the rounds grew the
resident set by more than --max-growth-mb.

With --compare-log the question log's cost is measured side by side: two servers over copies of
the same index, one with the log on (SQLite, the default) and one with it off (log.enabled:
false), loaded in turn (on, off, off, on, ...) for --rounds pairs; the report gives each one's
throughput and the log's cost, 1 - on/off, on /v1/ask (the route that writes to the log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).with_name("rag")
QUESTIONS = [
    "What does VPN error 809 mean?",
    "How long must a password be?",
    "What is the hotel limit in London?",
    "发现数据泄露后多久之内需要报告？",
    "How many weeks of parental leave do employees get?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client(url: str, number: int, deadline: float, results: list[tuple[str, int, float]]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        i = number
        while time.monotonic() < deadline:
            question = QUESTIONS[i % len(QUESTIONS)]
            route = "/v1/search" if i % 2 else "/v1/ask"
            body = {"query": question} if route == "/v1/search" else {"question": question}
            started = time.perf_counter()
            try:
                status = (await http.post(route, json=body)).status_code
            except httpx.HTTPError:
                status = 0
            results.append((route, status, time.perf_counter() - started))
            i += 1


async def sample_memory(pid: int, deadline: float, samples: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - start, rss_mb(pid)))
        await asyncio.sleep(1.0)


async def run_load(url: str, pid: int, clients: int, seconds: float) -> tuple[list, list]:
    results: list[tuple[str, int, float]] = []
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        sample_memory(pid, deadline, samples), *(client(url, n, deadline, results) for n in range(clients))
    )
    return results, samples


def summary(results: list[tuple[str, int, float]], seconds: float) -> dict:
    out = {}
    for route in ("/v1/search", "/v1/ask"):
        latencies = np.array([s for r, _, s in results if r == route]) * 1000
        errors = sum(1 for r, status, _ in results if r == route and status != 200)
        out[route] = {
            "requests": int(latencies.size),
            "errors": errors,
            "per_second": round(latencies.size / seconds, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies.size else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies.size else None,
        }
    return out


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [str(RAG), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return server, url


def compare_log(args: argparse.Namespace, env: dict[str, str]) -> int:
    """The log on against the log off, in alternating rounds on two servers."""
    servers = {
        "log_on": start_server(env),
        "log_off": start_server({**env, "RAG_DATA_DIR": env["RAG_DATA_DIR"] + "-off", "RAG_LOG__ENABLED": "false"}),
    }
    results: dict[str, list] = {name: [] for name in servers}
    try:
        for server, url in servers.values():
            asyncio.run(run_load(url, server.pid, args.clients, args.warmup))
        for pair in range(args.rounds):
            order = ["log_on", "log_off"] if pair % 2 == 0 else ["log_off", "log_on"]
            for name in order:
                server, url = servers[name]
                round_results, _ = asyncio.run(run_load(url, server.pid, args.clients, args.seconds))
                results[name] += round_results
                print(f"pair {pair + 1} {name}: {len(round_results)} requests", flush=True)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
    seconds = args.seconds * args.rounds
    routes = {name: summary(found, seconds) for name, found in results.items()}
    ask_on, ask_off = routes["log_on"]["/v1/ask"]["per_second"], routes["log_off"]["/v1/ask"]["per_second"]
    all_on, all_off = (sum(r["per_second"] for r in routes[name].values()) for name in ("log_on", "log_off"))
    report = {
        "clients": args.clients,
        "seconds_per_round": args.seconds,
        "pairs": args.rounds,
        "routes": routes,
        "log_cost_ask": round(1 - ask_on / ask_off, 4) if ask_off else None,
        "log_cost_all": round(1 - all_on / all_off, 4) if all_off else None,
        "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 1 if any(route["errors"] for found in routes.values() for route in found.values()) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-growth-mb", type=float, default=25)
    parser.add_argument("--compare-log", action="store_true", help="The question log on against off.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = PROJECT / "bench" / "out" / ("load-log.json" if args.compare_log else "load.json")
    data_dir = Path(tempfile.mkdtemp(prefix="rag-load-"))
    env = {**os.environ, "RAG_CONFIG": str(PROJECT / "configs" / "offline.yaml"), "RAG_DATA_DIR": str(data_dir)}
    subprocess.run([str(RAG), "ingest", str(PROJECT / "data")], env=env, check=True, capture_output=True)
    if args.compare_log:
        shutil.copytree(data_dir, f"{data_dir}-off")
        return compare_log(args, env)
    server, url = start_server(env)
    try:
        asyncio.run(run_load(url, server.pid, args.clients, args.warmup))  # warm-up, not counted
        results, samples, round_ends = [], [], []
        for _ in range(args.rounds):
            round_results, round_samples = asyncio.run(run_load(url, server.pid, args.clients, args.seconds))
            results += round_results
            samples += round_samples
            round_ends.append(round(rss_mb(server.pid), 1))
            print(f"round {len(round_ends)}: {len(round_results)} requests, RSS {round_ends[-1]} MB", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "routes": summary(results, args.seconds * args.rounds),
        "rss_mb": {
            "after_warmup": round(samples[0][1], 1),
            "end_of_each_round": round_ends,
            "growth_second_half": round(round_ends[-1] - round_ends[len(round_ends) // 2 - 1], 1)
            if args.rounds >= 4
            else None,
            "max": round(max(mb for _, mb in samples), 1),
        },
        "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    errors = sum(route["errors"] for route in report["routes"].values())
    growth = report["rss_mb"]["growth_second_half"]
    return 1 if errors or (growth is not None and growth > args.max_growth_mb) else 0


if __name__ == "__main__":
    sys.exit(main())
