"""Real processes on 127.0.0.1: free ports, `chroma run`, `rag` as a user runs it, `rag serve`;
each wait bounded, each process stopped on the way out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from .profiles import PROJECT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop(process: subprocess.Popen[Any], *, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def run_chroma(path: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `chroma run` on 127.0.0.1:`port` keeping its data in `path`, stopped on exit."""
    chroma = Path(sys.executable).with_name("chroma")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            wait_for_port(port, process=process)
            yield process
        finally:
            stop(process)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`rag ...` as a user runs it: a real subprocess (`input`: what the user types)."""
    rag = Path(sys.executable).with_name("rag")
    return subprocess.run(
        [str(rag), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=PROJECT,
    )


@contextmanager
def rag_serve(env: dict[str, str], *, workers: int, log: Path) -> Iterator[str]:
    """A real `rag serve` on a free port; yields its URL once every worker answers /healthz."""
    port = free_port()
    rag = Path(sys.executable).with_name("rag")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(rag), "serve", "--port", str(port), "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=PROJECT,
        )
        try:
            wait_for_port(port, timeout=120, process=process)
            url = f"http://127.0.0.1:{port}"
            # With several workers the port opens before every worker has run its lifespan.
            for _ in range(240):
                with suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                time.sleep(0.25)
            yield url
        finally:
            stop(process)
