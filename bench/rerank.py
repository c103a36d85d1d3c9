"""Rerank latency: 100 passages of ~400 tokens through the `local` Qwen3-Reranker backend.

    python bench/rerank.py                         # tiny stand-in, this machine (code-path cost only)
    python bench/rerank.py --shape qwen3-0.6b      # random weights shaped like Qwen3-Reranker-0.6B
    python bench/rerank.py --model PATH            # a real model folder, if you have one
    python bench/rerank.py --backend vllm --shape qwen3-0.6b --passages 20 100
        # vLLM's CPU build (.venv-vllm) serving the same weights, side by side with the local
        # backend in one run: tokens/s of each, their ratio, vLLM's first-call warm-up

Reports the median wall time of one `score()` call over 100 passages, real tokens per second,
and the padding overhead (padded tokens / real tokens - 1) of our length-sorted token-budget
batches next to what naive fixed-size batches in recall order would pad. Passage lengths vary
(0.5x to 1.5x the target), as recalled chunks do. Writes bench/out/rerank-<device>-<shape>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import load_settings  # noqa: E402
from rag.rerank.local import LocalQwen3Reranker  # noqa: E402
from tests.support.tiny_models import QWEN3_0_6B_SHAPE, TINY_SHAPE, VLLM_TINY_SHAPE, build_causal_lm  # noqa: E402

QUERY = "How long should the caller wait before escalating an incident that nobody has acknowledged?"


def passages(tokenizer: object, count: int, tokens: int, seed: int = 7) -> list[str]:
    """`count` passages cut from the sample documents, lengths spread over 0.5x..1.5x `tokens`."""
    import random

    text = " ".join(
        " ".join(p.read_text(encoding="utf-8", errors="ignore").split())
        for p in sorted((ROOT / "data").glob("*"))
        if p.suffix in {".md", ".txt", ".html"}
    )
    ids = tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    while len(ids) < tokens * 2:
        ids = ids + ids
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        length = rng.randint(tokens // 2, tokens * 3 // 2)
        start = rng.randrange(0, len(ids) - length)
        out.append(tokenizer.decode(ids[start : start + length]))  # type: ignore[attr-defined]
    return out


def padded_tokens(lengths: list[int], groups: list[list[int]]) -> int:
    return sum(len(group) * max(lengths[i] for i in group) for group in groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["tiny", "qwen3-0.6b"], default="tiny")
    parser.add_argument("--model", help="a model folder instead of a random-weight one")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", choices=["local", "vllm"], default="local")
    parser.add_argument("--passages", type=int, nargs="+", default=[100])
    parser.add_argument("--vllm-dtype", default="bfloat16", help="--dtype of the vLLM server")
    # 100 passages of ~470 tokens hold ~5 GB of a 0.6B model's KV cache: with less, vLLM preempts and
    # recomputes, and runs several times slower.
    parser.add_argument("--vllm-kv-gb", type=int, default=8, help="VLLM_CPU_KVCACHE_SPACE of the server")
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--batch-tokens", type=int, nargs="+", default=[16384])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="rerank.compile: torch.compile on a GPU")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    workdir = Path(tempfile.mkdtemp(prefix="bench-rerank-"))
    model_path = args.model
    built_s = 0.0
    if model_path is None:
        started = time.perf_counter()
        # vLLM's CPU attention refuses the tiny head_dim 16 (on the first request, after /health said ready).
        tiny = VLLM_TINY_SHAPE if args.backend == "vllm" else TINY_SHAPE
        shape = QWEN3_0_6B_SHAPE if args.shape == "qwen3-0.6b" else tiny
        model_path = str(build_causal_lm(workdir / args.shape, shape=shape, dtype=torch.bfloat16))
        built_s = time.perf_counter() - started
    if args.backend == "vllm":
        side_by_side(args, model_path, built_s)
        return

    runs = []
    for batch_tokens in args.batch_tokens:
        settings = load_settings(
            environ={},
            rerank={
                "model": model_path,
                "device": args.device,
                "batch_tokens": batch_tokens,
                "cpu_max_length": 8192,
                "compile": args.compile,
            },
        )
        reranker = LocalQwen3Reranker(settings.rerank)
        reranker.warm_up()
        texts = passages(reranker._tokenizer, args.passages[0], args.tokens)
        sequences = [reranker.encode_pair(QUERY, t) for t in texts]
        lengths = [len(s) for s in sequences]
        ours = reranker.batches(sequences)
        naive_size = max(1, len(ours[0]))  # the same batch count, in recall order, unsorted
        naive = [list(range(i, min(i + naive_size, len(lengths)))) for i in range(0, len(lengths), naive_size)]
        started = time.perf_counter()
        reranker.score(QUERY, texts)  # warm-up: kernels, allocator (and compilation)
        first_s = time.perf_counter() - started
        reranker.score(QUERY, texts)
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            reranker.score(QUERY, texts)
            times.append(time.perf_counter() - started)
        real = sum(lengths)
        median = statistics.median(times)
        run = {
            "batch_tokens": batch_tokens,
            "compile": args.compile,
            "first_call_s": round(first_s, 2),
            "batches": len(ours),
            "median_ms": round(median * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "real_tokens": real,
            "tokens_per_s": round(real / median),
            "padding_overhead": round(padded_tokens(lengths, ours) / real - 1, 4),
            "padding_overhead_naive": round(padded_tokens(lengths, naive) / real - 1, 4),
        }
        runs.append(run)
        print(json.dumps(run))
        device = reranker.device
        parameters = reranker.parameter_count
        reranker.close()

    result = {
        "model": args.model or f"random weights, {args.shape} shape",
        "parameters": parameters,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "dtype": "bf16" if device.startswith("cuda") else "fp32",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "passages": args.passages[0],
        "target_tokens": args.tokens,
        "model_build_s": round(built_s, 1),
        "torch": torch.__version__,
        "runs": runs,
    }
    name = f"rerank-{device}-{args.shape if args.model is None else 'model'}{'-compiled' if args.compile else ''}.json"
    out = args.out or ROOT / "bench" / "out" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def side_by_side(args: argparse.Namespace, model_path: str, built_s: float) -> None:
    """The same weights and passages through our `local` backend (fp32, in-process) and through
    vLLM's CPU build (our `vllm` backend, client-side template), one after the other in one run."""
    import torch

    from rag.rerank.vllm_http import VllmReranker
    from tests.support.vllm_servers import RERANKER_ARGS, VllmServer, unavailable

    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    local = LocalQwen3Reranker(
        load_settings(environ={}, rerank={"model": model_path, "device": "cpu", "cpu_max_length": 8192}).rerank
    )
    local.warm_up()
    log = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.log"
    server = VllmServer(
        Path(model_path), "bench-reranker", (*RERANKER_ARGS, "--dtype", args.vllm_dtype), log, args.vllm_kv_gb
    )
    started = time.perf_counter()
    server.start()
    rows = []
    try:
        server.wait_ready()
        ready_s = time.perf_counter() - started
        remote = VllmReranker(
            load_settings(
                environ={},
                rerank={"backend": "vllm", "vllm": {"url": server.url, "model": server.name, "timeout_s": 3600}},
            ).rerank
        )
        for count in args.passages:
            texts = passages(local._tokenizer, count, args.tokens)
            tokens = sum(len(local.encode_pair(QUERY, t)) for t in texts)
            started = time.perf_counter()
            remote.score(QUERY, texts)
            first_s = time.perf_counter() - started
            vllm_s = timed(lambda texts=texts: remote.score(QUERY, texts), args.repeats)
            local.score(QUERY, texts[:2])  # the local backend's own warm-up
            local_s = timed(lambda texts=texts: local.score(QUERY, texts), 1)
            row = {
                "passages": count,
                "tokens": tokens,
                "local_s": round(local_s, 2),
                "local_tokens_per_s": round(tokens / local_s),
                "vllm_s": round(vllm_s, 2),
                "vllm_tokens_per_s": round(tokens / vllm_s),
                "vllm_first_call_s": round(first_s, 2),
                "ratio": round(local_s / vllm_s, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.stop()
    result = {
        "model": args.model or f"random weights, {args.shape} shape",
        "parameters": local.parameter_count,
        "local": "transformers in-process, fp32, CPU",
        "vllm": f"vllm-cpu, --dtype {args.vllm_dtype}, {args.vllm_kv_gb} GB KV cache, ready after {ready_s:.0f} s",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "target_tokens": args.tokens,
        "model_build_s": round(built_s, 1),
        "runs": rows,
    }
    out = args.out or ROOT / "bench" / "out" / f"rerank-vllm-cpu-{args.shape if args.model is None else 'model'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def timed(call: object, repeats: int) -> float:
    """The median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    main()
