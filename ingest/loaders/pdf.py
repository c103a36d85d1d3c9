"""PDF: text per page (pypdf), page headers/footers dropped, lines re-joined, headings found.

A page without a usable text layer (none, or mostly undecodable glyphs) is drawn and read by OCR
when the `ocr` extra is installed (`ingest.loaders.ocr`); a mixed document OCRs only those pages.
Ruled tables on text pages become Markdown tables in place (`ingest.loaders.pdf_tables`).

Headings come from the PDF's outline (bookmarks) when it has one, else from numbered heading
lines ("3.2.1 Incident Analysis", "第一章 总则"). pypdf breaks lines mid-sentence; Chinese lines
are joined with no space, other lines with one, and lines ending a sentence keep their break.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders import ocr
from ingest.loaders._format import FileFormat, LoadOptions, Signature
from ingest.loaders.pdf_tables import pages_with_tables
from rag.errors import LoadError
from rag.tables import is_table_line
from rag.types import LoadedDocument, Section

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its recoverable-damage chatter is not for users

_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_END = re.compile(f"[{_CJK}]$")
_CJK_START = re.compile(f"^[{_CJK}]")
_SENTENCE_END = re.compile(r"[.!?:;。！？：；]$")
_LIST_START = re.compile(r"^(?:[•●▪◦■□\-–*]\s|\(?[0-9a-zA-Z]{1,3}[.)]\s|第[一二三四五六七八九十百千零〇]+条)")
_EN_HEADING = re.compile(r"^(?P<num>\d{1,2}(?:\.\d{1,2}){0,4})\.?\s+(?P<title>[A-Z][^\n]{2,90})$")
_APPENDIX = re.compile(r"^(?P<num>Appendix\s+[A-Z])\s*[—–:.-]?\s*(?P<title>[A-Z][^\n]{2,90})$")
_ZH_HEADING = re.compile(r"^第[一二三四五六七八九十百零〇]+(?P<unit>[编章节])(?:\s|$)")
_ZH_LEVEL = {"编": 1, "章": 2, "节": 3}
_DOT_LEADER = re.compile(r"\.{4,}|…|\s\d+$")
# Fewer real characters per page than this, on average: no usable text layer (a scan).
_MIN_CHARS_PER_PAGE = 2
# A page with fewer characters than this in its text layer, or more than this share of them
# undecodable, is read by OCR where the extra is installed.
_OCR_BELOW_CHARS = 10
_OCR_ABOVE_GARBAGE = 0.3


@dataclass(frozen=True)
class _Heading:
    page: int  # 0-based
    level: int
    title: str


def load_pdf(path: Path, data: bytes, options: LoadOptions) -> LoadedDocument:
    if not data.lstrip()[:1024].startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        kind = "text" if _looks_like_text(data) else "binary data"
        raise LoadError(path, f"named .pdf but is not a PDF (the content is {kind})")
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt(path, reader, options.pdf_password)
        page_count = len(reader.pages)
        raw_pages = [_extract(path, reader, i) for i in range(page_count)]
        outline = _outline_headings(reader)
        title = _metadata_title(reader)
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError(path, "encrypted PDF: a password is needed (ingest --password)") from None
    except DependencyError as exc:
        raise LoadError(path, f"cannot decrypt this PDF: {exc}") from None
    except Exception as exc:
        raise LoadError(path, f"corrupt or truncated PDF ({type(exc).__name__}: {_first_line(exc)})") from None

    if page_count == 0:
        raise LoadError(path, "PDF has no pages")
    pages_lines = [_lines(text) for text in raw_pages]
    scanned = [index for index, text in enumerate(raw_pages) if _needs_ocr(text)]
    password = options.pdf_password if reader.is_encrypted else None
    text_pages = sorted(set(range(page_count)) - set(scanned))
    for index, lines in _tables(data, text_pages, password).items():
        pages_lines[index] = _lines("\n".join(lines))
    if scanned and options.ocr and ocr.available():
        for index, lines in _ocr(path, data, scanned, options, password).items():
            pages_lines[index] = lines
    else:
        real_chars = sum(len("".join(text.split())) for text in raw_pages)
        if real_chars < _MIN_CHARS_PER_PAGE * page_count:
            why = "ingest.ocr is off" if not options.ocr else ocr.EXTRA_HINT
            raise LoadError(path, f"no text layer (a scanned or image-only PDF): to read it by OCR, {why}")

    pages_lines = _drop_running_lines(pages_lines)
    sections = _sections(pages_lines, outline)
    return LoadedDocument(path=str(path), file_type="pdf", sections=sections, pages=page_count, title=title)


def _needs_ocr(text: str) -> bool:
    chars = "".join(text.split())
    if len(chars) < _OCR_BELOW_CHARS:
        return True
    garbage = sum(1 for ch in chars if _undecodable(ch))
    return garbage > _OCR_ABOVE_GARBAGE * len(chars)


def _undecodable(ch: str) -> bool:
    """A glyph the text layer could not map to a character (fonts without a ToUnicode map)."""
    if ch == "\ufffd":
        return True
    category = unicodedata.category(ch)
    if category == "Co":
        return not _SYMBOL_FONT_GLYPH.match(ch)  # Symbol-font bullets are private-use but fine
    return category in ("Cc", "Cn")


def _tables(data: bytes, pages: list[int], password: str | None) -> dict[int, list[str]]:
    try:
        return pages_with_tables(data, pages, password=password)
    except MemoryError:
        raise
    except Exception:
        return {}  # the tables' pages keep pypdf's loose lines: text, only less structured


def _ocr(path: Path, data: bytes, pages: list[int], options: LoadOptions, password: str | None) -> dict[int, list[str]]:
    if len(pages) > options.ocr_max_pages:
        raise LoadError(
            path,
            f"{len(pages)} pages have no text layer: more than ingest.ocr_max_pages ({options.ocr_max_pages}) to OCR",
        )
    try:
        return ocr.read_pages(data, pages, password=password, progress=options.on_page)
    except MemoryError:
        raise
    except Exception as exc:
        if "bad_alloc" in str(exc):  # ONNX Runtime's C++ allocation failed: the worker's memory cap
            raise MemoryError(str(exc)) from None
        raise LoadError(path, f"OCR failed ({type(exc).__name__}: {_first_line(exc)})") from None


def _decrypt(path: Path, reader: object, password: str | None) -> None:
    from pypdf import PasswordType

    if reader.decrypt("") != PasswordType.NOT_DECRYPTED:  # type: ignore[attr-defined]
        return
    if not password:
        raise LoadError(path, "encrypted PDF: a password is needed (ingest --password)")
    if reader.decrypt(password) == PasswordType.NOT_DECRYPTED:  # type: ignore[attr-defined]
        raise LoadError(path, "encrypted PDF: the password given does not open it")


def _extract(path: Path, reader: object, index: int) -> str:
    from pypdf.errors import LimitReachedError

    try:
        page = reader.pages[index]  # type: ignore[attr-defined]
        text = page.extract_text() or ""
        if not text.strip():
            # pypdf's text extraction swallows its own inflate cap; an empty page may be a bomb.
            page.get_contents()
        return text
    except LimitReachedError:
        raise LoadError(path, f"page {index + 1} holds a decompression bomb (inflates past pypdf's cap)") from None
    except Exception:
        # One damaged page does not sink the document; it just has no text.
        return ""


def _metadata_title(reader: object) -> str:
    try:
        meta = reader.metadata  # type: ignore[attr-defined]
        return str(meta.title or "").strip() if meta else ""
    except Exception:
        return ""


def _outline_headings(reader: object) -> list[_Heading]:
    found: list[_Heading] = []

    def walk(items: list[object], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)  # type: ignore[attr-defined]
                title = " ".join(str(item.title).split())  # type: ignore[attr-defined]
            except Exception:
                continue
            if page is not None and page >= 0 and title:
                found.append(_Heading(page, level, title))

    try:
        walk(reader.outline, 1)  # type: ignore[attr-defined]
    except Exception:
        return []
    return found


_LEADER_RUN = re.compile(r"(?:\s?\.){5,}")  # table-of-contents dot leaders: tokens with no meaning
_SYMBOL_FONT_GLYPH = re.compile("[\uf000-\uf0ff]")  # Symbol/Wingdings bullets land in the private-use area


def _lines(text: str) -> list[str]:
    text = _SYMBOL_FONT_GLYPH.sub("•", text.replace("\r", "\n"))
    text = _LEADER_RUN.sub(" … ", text)
    return [line.strip() for line in text.split("\n")]


def _drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Remove page headers and footers: short lines that recur near the edge of most pages."""
    if len(pages) < 4:
        return pages
    edge = 3

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    counts: Counter[str] = Counter()
    for lines in pages:
        content = [ln for ln in lines if ln]
        counts.update({key(ln) for ln in content[:edge] + content[-edge:] if len(ln) <= 100})
    threshold = max(3, len(pages) // 2)
    running = {k for k, n in counts.items() if n >= threshold}
    running.add("#")  # a bare page number
    cleaned = []
    for lines in pages:
        content = [ln for ln in lines if ln]
        head, tail = content[:edge], content[-edge:]
        drop = {id(x) for x in head + tail if key(x) in running}
        cleaned.append([ln for ln in lines if not (ln and id(ln) in drop and key(ln) in running)])
    return cleaned


def _heading_level(line: str) -> tuple[int, str] | None:
    """A numbered heading line's level, or None. Used only when the PDF has no outline."""
    if len(line) > 100 or _DOT_LEADER.search(line):
        return None
    zh = _ZH_HEADING.match(line)
    if zh:
        return _ZH_LEVEL[zh.group("unit")], line
    for pattern in (_EN_HEADING, _APPENDIX):
        match = pattern.match(line)
        if match and not _SENTENCE_END.search(line.rstrip()) and not line.rstrip().endswith(","):
            title = match.group("title")
            if sum(ch.isdigit() for ch in title) > len(title) // 3:
                return None
            return match.group("num").count(".") + 1 if pattern is _EN_HEADING else 1, line
    return None


def _sections(pages: list[list[str]], outline: list[_Heading]) -> tuple[Section, ...]:
    by_page: dict[int, list[_Heading]] = {}
    for heading in outline:
        by_page.setdefault(heading.page, []).append(heading)
    path: list[tuple[int, str]] = []
    sections: list[Section] = []

    def push(level: int, title: str) -> None:
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))

    def flush(lines: list[str], page: int) -> None:
        text = _join_lines(lines)
        if text:
            sections.append(Section(text=text, page=page, heading_path=tuple(t for _, t in path)))
        lines.clear()

    for index, lines in enumerate(pages):
        pending = list(by_page.get(index, []))
        current: list[str] = []
        for line in lines:
            if outline:
                hit = _match_outline(line, pending)
                if hit is not None:
                    flush(current, index + 1)
                    push(hit.level, hit.title)
                    pending.remove(hit)
            else:
                level = _heading_level(line)
                if level is not None:
                    flush(current, index + 1)
                    push(level[0], " ".join(level[1].split()))
            current.append(line)
        # Outline entries whose title was not found in the text start at the page's end.
        for heading in pending:
            flush(current, index + 1)
            push(heading.level, heading.title)
        flush(current, index + 1)
    return tuple(sections)


def _match_outline(line: str, pending: list[_Heading]) -> _Heading | None:
    if not line:
        return None
    norm = _squash(line)
    for heading in pending:
        title = _squash(heading.title)
        if title and (norm == title or (norm.startswith(title) and len(norm) - len(title) < 8)):
            return heading
    return None


def _squash(text: str) -> str:
    return re.sub(r"[\s.]+", "", text).lower()


def _join_lines(lines: list[str]) -> str:
    """Re-join pypdf's visual lines: no space between CJK, one elsewhere; keep real breaks."""
    out: list[str] = []
    previous = ""
    for line in lines:
        if not line:
            if out and out[-1] != "\n\n":
                out.append("\n\n")
            previous = ""
            continue
        if previous:
            if is_table_line(line) or is_table_line(previous):
                out.append("\n")  # a table row is a line of its own
            elif _CJK_END.search(previous) and _CJK_START.search(line) and not _LIST_START.match(line):
                out.append("")
            elif _SENTENCE_END.search(previous) or _LIST_START.match(line) or _heading_level(previous):
                out.append("\n")
            else:
                out.append(" ")
        out.append(line)
        previous = line
    return "".join(out).strip()


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"


FORMAT = FileFormat("pdf", "PDF", (".pdf",), load_pdf, signature=Signature(b"%PDF-", 1024, "a PDF"), compressed=True)
