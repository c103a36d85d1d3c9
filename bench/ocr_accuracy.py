"""How faithfully does OCR read a scan? Pages of the shared corpus's text PDFs are drawn as a 200-dpi
scanner would, assembled into image-only PDFs, read back by the `ocr` extra, and compared with the
original's text layer: character accuracy (1 - edit distance / reference length, over all sampled
pages of a language) and pages per second, with a 95% interval from resampling pages (the page is the unit sampled; a
percentile bootstrap, 10,000 draws). The comparison keeps order: a table's cells come in the text
layer in the order they were drawn, often column by column, while OCR reads row by row, and that
counts as errors; so pages holding a table (found by the loader's table finder) are also reported
apart.

    .venv/bin/python bench/ocr_accuracy.py [--sample tuning|check] [--pages-per-file 4] [--shared ../shared]
    .venv/bin/python bench/ocr_accuracy.py --summary-only    # the table again from the last run's JSON

Needs the `ocr` extra (make test installs it). Pages are spread evenly over each file, its first
page (a cover) left out. The English post-processing (spaces put back, `ocr_spacing`) was tuned on
the default sample's pages; `--sample check` measures pages it was not tuned on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from ingest.loaders import ocr  # noqa: E402
from ingest.loaders.pdf_tables import pages_with_tables  # noqa: E402
from rag.evaluate.metrics import character_accuracy  # noqa: E402
from tests.support.scans import SCANNER_DPI, scanned_copy  # noqa: E402


def sampled(count: int, wanted: int, sample: str = "tuning") -> list[int]:
    """`wanted` page indexes spread over pages 1..count-1 (0-based; the cover left out): the tuning
    sample's in the middle of each stretch, the check sample's a quarter into it, so that the two share
    no page when a file has twice as many pages as are wanted."""
    pool = list(range(1, count)) or [0]
    step = max(1, len(pool) // wanted)
    return pool[(step // 2 if sample == "tuning" else step // 4) :: step][:wanted]


def measure(path: Path, pages: list[int]) -> list[dict[str, object]]:
    reader = PdfReader(path)
    with_tables = pages_with_tables(path.read_bytes(), pages, password=None)
    scan = scanned_copy(path, pages)
    started = time.perf_counter()
    lines = ocr.read_pages(scan, list(range(len(pages))), password=None, progress=None)
    seconds = time.perf_counter() - started
    rows = []
    for position, index in enumerate(pages):
        distance, length = character_accuracy("\n".join(lines[position]), reader.pages[index].extract_text() or "")
        rows.append(
            {
                "file": path.name,
                "page": index + 1,
                "distance": distance,
                "length": length,
                "table": index in with_tables,
            }
        )
    for row in rows:
        row["seconds"] = seconds / len(pages)
    return rows


def page_bootstrap(rows: list[dict[str, object]], draws: int = 10_000) -> tuple[float, float]:
    """95% interval of the pooled accuracy, pages drawn with replacement."""
    distances = np.array([int(r["distance"]) for r in rows], dtype=float)  # type: ignore[call-overload]
    lengths = np.array([int(r["length"]) for r in rows], dtype=float)  # type: ignore[call-overload]
    picks = np.random.default_rng(19).integers(0, len(rows), size=(draws, len(rows)))
    accuracies = 1 - distances[picks].sum(axis=1) / lengths[picks].sum(axis=1)
    low, high = np.percentile(accuracies, [2.5, 97.5])
    return float(low), float(high)


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    def accuracy(row: dict[str, object]) -> float:
        return 1 - int(row["distance"]) / max(1, int(row["length"]))  # type: ignore[call-overload]

    distance = sum(int(r["distance"]) for r in rows)  # type: ignore[call-overload]
    length = sum(int(r["length"]) for r in rows)  # type: ignore[call-overload]
    worst = min(rows, key=accuracy)
    return {
        "pages": len(rows),
        "characters": length,
        "accuracy": 1 - distance / length,
        "interval": page_bootstrap(rows),
        "worst": f"{accuracy(worst):.3f} ({worst['file']} p.{worst['page']})",
        "pages_per_s": 1 / statistics.fmean(float(r["seconds"]) for r in rows),  # type: ignore[arg-type]
    }


def measure_all(shared: Path, pages_per_file: int, sample: str) -> dict[str, list[dict[str, object]]]:
    if not ocr.available():
        sys.exit(f"OCR is not installed: {ocr.EXTRA_HINT}")
    rows: dict[str, list[dict[str, object]]] = {}
    for language in ("en", "zh"):
        rows[language] = []
        for path in sorted((shared / "corpus" / language).glob("*.pdf")):
            rows[language] += measure(path, sampled(len(PdfReader(path).pages), pages_per_file, sample))
            print(f"{path.name}: done", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages-per-file", type=int, default=4)
    parser.add_argument(
        "--sample",
        choices=["tuning", "check"],
        default="tuning",
        help="which pages: those the OCR post-processing was tuned on, or others (no page of both)",
    )
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("RAG_SHARED_DIR", ROOT.parent / "shared")))
    parser.add_argument("--out", type=Path, help="default: bench/out/ocr_accuracy-SAMPLE.json")
    parser.add_argument("--summary-only", action="store_true", help="no OCR: summarise the pages in --out")
    args = parser.parse_args()
    args.out = args.out or ROOT / "bench" / "out" / f"ocr_accuracy-{args.sample}.json"
    if args.summary_only:
        rows = json.loads(args.out.read_text())["pages"]
    else:
        rows = measure_all(args.shared, args.pages_per_file, args.sample)
    columns = "pages | characters | accuracy | 95% interval | worst page | pages/s"
    print(f"| {args.sample} pages, scans at {SCANNER_DPI} dpi | {columns} |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for language, found in rows.items():
        for label, group in (
            (language, found),
            (f"{language}, pages without a table", [r for r in found if not r["table"]]),
        ):
            if not group:
                continue
            summary[label] = line = summarise(group)
            low, high = line["interval"]  # type: ignore[misc]
            print(
                f"| {label} | {line['pages']} | {line['characters']} | {line['accuracy']:.4f} | "
                f"{low:.3f}-{high:.3f} | {line['worst']} | {line['pages_per_s']:.2f} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "pages": rows}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
