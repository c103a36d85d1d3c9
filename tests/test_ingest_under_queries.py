"""Re-ingesting a collection while 20 clients query it: a real `rag ingest` process and a real
`rag serve` on one `chroma run`. No query sees half a document, a mix of two versions of one
document, or an error."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from .support.processes import free_port, rag_serve, run_chroma, run_cli
from .support.profiles import OFFLINE_PROFILE

pytestmark = [pytest.mark.slow, pytest.mark.server]

KEY = {"Authorization": "Bearer concurrent-admin"}
CLIENTS = 20


def policy(version: str) -> str:
    sections = [
        f"## Rule {n}\n\nPolicy {version}: laptops must lock after {n + 4} minutes of inactivity, and "
        f"remote staff use the VPN for rule {n} systems. " * 3
        for n in range(6)
    ]
    return "# Access policy\n\n" + "\n\n".join(sections)


def test_twenty_clients_never_see_half_a_document_during_ingest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text(policy("A"))
    port = free_port()
    chroma_url = f"http://127.0.0.1:{port}"
    env = {"RAG_CONFIG": str(OFFLINE_PROFILE), "RAG_CHROMA__URL": chroma_url, "RAG_COLLECTION": "policies"}
    with ExitStack() as stack:
        stack.enter_context(run_chroma(tmp_path / "chroma", port, tmp_path / "chroma.log"))
        first = run_cli("ingest", "--json", str(docs), env={**env, "RAG_DATA_DIR": str(tmp_path / "ingest")})
        assert first.returncode == 0, first.stderr
        api = stack.enter_context(
            rag_serve(
                {
                    **os.environ,
                    **env,
                    "RAG_DATA_DIR": str(tmp_path / "api"),
                    "RAG_API__KEYS": json.dumps([{"key": "concurrent-admin", "role": "admin"}]),
                },
                workers=1,
                log=tmp_path / "api.log",
            )
        )
        # Version B of the policy and a new document, written by another process while clients read.
        (docs / "policy.md").write_text(policy("B"))
        (docs / "handbook.md").write_text(policy("H").replace("Access policy", "Staff handbook"))

        seen: list[dict] = []
        errors: list[str] = []
        done = threading.Event()

        def client() -> None:
            deadline = time.monotonic() + 300
            with httpx.Client(base_url=api, headers=KEY, timeout=60) as http:
                while not done.is_set() and time.monotonic() < deadline:
                    body = {"query": "how fast must laptops lock", "collection": "policies", "top_n": 100}
                    response = http.post("/v1/search", json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    seen.append(response.json())

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        second = run_cli("ingest", "--json", str(docs), env={**env, "RAG_DATA_DIR": str(tmp_path / "ingest")})
        time.sleep(2)
        done.set()
        for thread in threads:
            thread.join(timeout=120)
    assert second.returncode == 0, second.stderr
    chunks = {Path(o["path"]).name: o["chunks"] for o in json.loads(second.stdout)["outcomes"]}
    chunks_a = {Path(o["path"]).name: o["chunks"] for o in json.loads(first.stdout)["outcomes"]}["policy.md"]
    assert not errors, errors[:5]
    assert len(seen) > CLIENTS, "too little traffic to say anything"

    states: Counter[str] = Counter()
    for result in seen:
        versions: dict[str, set[str]] = defaultdict(set)
        counts: Counter[str] = Counter()
        for passage in result["passages"]:
            versions[passage["file"]].add(passage["chunk_id"].split(":")[1])
            counts[passage["file"]] += 1
        assert all(len(v) == 1 for v in versions.values()), versions  # never two versions of one document
        policy_text = next(p["text"] for p in result["passages"] if p["file"] == "policy.md")
        version = "B" if "Policy B" in policy_text else "A"
        whole = chunks["policy.md"] if version == "B" else chunks_a
        assert counts["policy.md"] == whole, (version, [p["chunk_id"] for p in result["passages"]])  # never half
        assert counts["handbook.md"] in (0, chunks["handbook.md"])
        states[f"policy {version}, handbook {'in' if counts['handbook.md'] else 'out'}"] += 1
    assert states["policy B, handbook in"] > 0, states  # the clients did see the new state
    print(f"\n{len(seen)} searches by {CLIENTS} clients during the ingest, 0 errors: {dict(states)}")
    log = (tmp_path / "api.log").read_text()
    assert "Traceback" not in log, log[-3000:]
