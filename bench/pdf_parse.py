"""What finding tables costs a PDF's parse: each PDF of the shared corpus parsed by the loader as it
ships (pypdf, plus pdfplumber on the pages PDFium says draw many paths) and with table finding
switched off, alternating, best of three each.

    .venv/bin/python bench/pdf_parse.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.loaders import load_document, pdf  # noqa: E402
from rag.tables import segments  # noqa: E402


def parse_seconds(path: Path, data: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    document = load_document(path, data)
    seconds = time.perf_counter() - started
    return seconds, sum(table for section in document.sections for _, _, table in segments(section.text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("RAG_SHARED_DIR", ROOT.parent / "shared")))
    args = parser.parse_args()
    shipped = pdf.pages_with_tables
    print("| file | pages | tables | parse s, tables on | parse s, tables off | ratio |")
    print("|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for path in sorted((args.shared / "corpus").glob("[ez][nh]/*.pdf")):
        data = path.read_bytes()
        on, off = [], []
        tables = 0
        for _ in range(3):
            pdf.pages_with_tables = shipped
            seconds, tables = parse_seconds(path, data)
            on.append(seconds)
            pdf.pages_with_tables = lambda *a, **k: {}
            off.append(parse_seconds(path, data)[0])
        pdf.pages_with_tables = shipped
        pages = load_document(path, data).pages
        totals[0] += min(on)
        totals[1] += min(off)
        print(f"| {path.name} | {pages} | {tables} | {min(on):.2f} | {min(off):.2f} | {min(on) / min(off):.2f} |")
    print(f"| all | | | {totals[0]:.2f} | {totals[1]:.2f} | {totals[0] / totals[1]:.2f} |")


if __name__ == "__main__":
    main()
