"""One exception family for the whole product.

    RagError
    ├── ConfigError          settings that cannot work (bad file, bad value, unknown collection)
    │   └── CollectionNotFound
    ├── ModelLoadError       a model that cannot be loaded here (missing weights, offline hub)
    ├── LoadError            one input file that cannot be turned into text; carries the path
    ├── InvalidHistory       a conversation's history that cannot be used; names the field
    ├── StoreError           the vector store refused or is unreachable
    └── BackendError         a served backend (reranker, generator) misbehaved
        ├── BackendUnavailable
        ├── BackendTimeout
        └── BadBackendResponse

Callers catch the family they can act on; the CLI and the API map each to one exit code or
HTTP status in one place.
"""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(RagError):
    pass


class CollectionNotFound(ConfigError):
    """No knowledge base of that name. The message names where we looked (for the CLI's user);
    `name` alone is what an API client may see."""

    def __init__(self, name: str, location: str) -> None:
        super().__init__(f"no knowledge base named {name!r} in {location}")
        self.name = name


class ModelLoadError(RagError):
    pass


class InvalidHistory(RagError):
    """`field` names where (e.g. "history.2.role"); `status` is the HTTP status it maps to (422
    malformed, 413 too long). The message never quotes what was said."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


class LoadError(RagError):
    """A file that cannot be ingested. `reason` is one line meant for the user."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[LoadError], tuple[str, str]]:
        # Crosses process boundaries (the parse worker returns it): rebuild from both fields.
        return (LoadError, (self.path, self.reason))


class StoreError(RagError):
    pass


class StoreUnavailable(StoreError):
    """The Chroma server refused, dropped or did not answer within chroma.timeout_s: worth a retry later."""


class BackendError(RagError):
    pass


class BackendUnavailable(BackendError):
    pass


class BackendTimeout(BackendError):
    pass


class BadBackendResponse(BackendError):
    pass


class QuestionLogUnavailable(RagError):
    """The question log's database cannot be read or written (down, full, read-only)."""


class QuestionLogOff(RagError):
    """The question log is switched off here (log.enabled: false): no feedback can be kept."""


class AnswerNotFound(RagError):
    """No logged answer has this id (never given, given with the log off, or past retention)."""


class SourceGone(RagError):
    """A document's file is no longer what was ingested (moved, deleted or changed)."""


class PageNotFound(RagError):
    """A page number beyond the document."""


class NotRenderable(RagError):
    """The file cannot be drawn (encrypted, or PDFium refuses it)."""
