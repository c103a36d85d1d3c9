"""Files sent by a client (the upload route; any caller holding file objects), ingested as one
transaction: stage each file, check its type by content, swap it into place, ingest, and keep
it only if it went in. A file that fails is rolled back: the earlier file of that name, which the
index still describes, is put back. Anything raised half-way rolls every file back.

Files are kept under one folder per collection (so a re-upload of a name replaces that document,
and the file is there to re-ingest). A client's file name is never a path: only its last
component survives, reduced to safe characters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ingest.loaders import SUFFIXES, format_of
from ingest.pipeline import Ingestor
from rag.errors import RagError

_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\u3400-\u9fff]+")
_BLOCK = 1 << 20
_HEAD = 8192  # bytes read to check a file's type by its content
_KEPT = ("added", "replaced", "unchanged")


class UploadTooLarge(RagError):
    """A file over the size limit: the whole upload is refused and nothing is kept."""


@dataclass(frozen=True)
class UploadOutcome:
    file: str
    status: str  # an ingest status ("added", "replaced", "unchanged", "failed")
    reason: str = ""
    # None for a file refused before the ingest (bad name or content): it has no document.
    doc_id: str | None = None
    pages: int | None = None
    chunks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def upload_folder(data_dir: Path, collection: str) -> Path:
    """Where a collection's uploaded files are kept."""
    return data_dir / "uploads" / collection


def safe_file_name(name: str | None) -> str:
    """The last path component of a client's file name, in safe characters; never '', '.' or '..'.
    Raises ValueError for a name whose type we do not read."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", base).strip("._ ")[:120]
    if not base or format_of(base) is None:
        suffix = Path(base).suffix.lower() or "(none)"
        raise ValueError(f"file type {suffix} is not accepted; send {', '.join(SUFFIXES)}")
    return base


def ingest_uploads(
    files: Sequence[tuple[str | None, BinaryIO]],
    *,
    ingestor: Ingestor,
    collection: str,
    folder: Path,
    max_file_mb: float,
) -> list[UploadOutcome]:
    """Stage, check, swap in and ingest `files` (client name, content); one outcome per file."""
    folder.mkdir(parents=True, exist_ok=True)
    outcomes: list[UploadOutcome] = []
    staged: list[tuple[Path, Path]] = []  # (incoming copy, final place)
    swapped: list[tuple[Path, Path | None]] = []  # (final place, the earlier file it replaced)
    try:
        for client_name, content in files:
            try:
                name = safe_file_name(client_name)
            except ValueError as exc:
                outcomes.append(UploadOutcome(client_name or "", "failed", str(exc)))
                continue
            if any(final.name == name for _, final in staged):
                outcomes.append(UploadOutcome(name, "failed", "the same name twice in one upload"))
                continue
            incoming = folder / f".incoming-{uuid.uuid4().hex}{Path(name).suffix}"
            staged.append((incoming, folder / name))
            _copy(content, incoming, max_file_mb, client_name or name)
            problem = _content_problem(incoming)
            if problem:
                staged.pop()
                incoming.unlink()
                outcomes.append(UploadOutcome(name, "failed", problem))
        while staged:
            incoming, final = staged.pop(0)
            swapped.append(_swap_in(incoming, final))
        paths = [final for final, _ in swapped]
        report = ingestor.run(paths, collection=collection) if paths else None
    except BaseException:
        for incoming, _ in staged:
            incoming.unlink(missing_ok=True)
        for final, previous in swapped:
            _roll_back(final, previous)
        raise
    by_path = {Path(o.path).resolve(): o for o in report.outcomes} if report is not None else {}
    for final, previous in swapped:
        outcome = by_path.get(final.resolve())
        if outcome is not None and outcome.status in _KEPT:
            if previous is not None:
                previous.unlink(missing_ok=True)
        else:
            _roll_back(final, previous)  # the index still holds the earlier version, if any
        if outcome is None:
            outcomes.append(UploadOutcome(final.name, "failed", "not ingested", "", 0, 0))
        else:
            outcomes.append(
                UploadOutcome(final.name, outcome.status, outcome.reason, outcome.doc_id, outcome.pages, outcome.chunks)
            )
    return outcomes


def _copy(content: BinaryIO, target: Path, max_mb: float, shown_name: str) -> None:
    limit = int(max_mb * 2**20)
    written = 0
    with target.open("wb") as handle:
        while block := content.read(_BLOCK):
            written += len(block)
            if written > limit:
                handle.close()
                target.unlink(missing_ok=True)
                raise UploadTooLarge(f"{shown_name}: over {max_mb:g} MB")
            handle.write(block)


def _content_problem(path: Path) -> str | None:
    """Why the content does not match the name's type, or None when it does."""
    fmt = format_of(path)
    if fmt is None:
        return f"file type {path.suffix} is not accepted"
    with path.open("rb") as handle:
        return fmt.content_problem(path.suffix.lower(), handle.read(_HEAD))


def _swap_in(incoming: Path, final: Path) -> tuple[Path, Path | None]:
    previous = None
    if final.exists():
        previous = final.with_name(f".previous-{uuid.uuid4().hex}{final.suffix}")
        final.replace(previous)
    incoming.replace(final)
    return final, previous


def _roll_back(final: Path, previous: Path | None) -> None:
    """Put back the file the index still describes (or remove a new one that never got in)."""
    if previous is not None and previous.exists():
        previous.replace(final)
    else:
        final.unlink(missing_ok=True)
