"""Build tiny random-weight Qwen3 stand-ins (embedding, reranker, generator) into OUTDIR.

    python scripts/make_tiny_models.py .tiny-models

Then point a profile at them, e.g. RAG_EMBEDDING__MODEL=.tiny-models/qwen3-embedding-tiny.
Never commit the output: it is random weights, rebuilt in seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.tiny_models import build_all  # test scaffolding: not in the shipped package


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    started = time.perf_counter()
    built = build_all(Path(sys.argv[1]))
    for kind, path in built.items():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        print(f"{kind:<10} {path}  ({size:.0f} MB)")
    print(f"built in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
