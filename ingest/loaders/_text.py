"""Bytes -> str for the text formats, refusing binary content instead of guessing."""

from __future__ import annotations

from pathlib import Path

from rag.errors import LoadError

_SNIFF = 8192


def decode_text(path: Path, data: bytes) -> str:
    head = data[:_SNIFF]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError(path, "invalid UTF-16 text") from None
    if b"\x00" in head:
        raise LoadError(path, f"binary content, not text (named {path.suffix or 'without an extension'})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Chinese documents still come in GB18030/GBK; strict decoding rejects other bytes.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise LoadError(path, "not valid UTF-8 (or GB18030) text") from None
