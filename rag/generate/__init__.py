"""Generators: write the answer from the top passages. Backends behind one protocol, picked by name.

`stream` yields the answer text piece by piece; joined, the pieces are the whole answer. A
backend that cannot answer raises a BackendError (the pipeline then answers extractively and
says so, or fails, as configured).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from rag.backends import GENERATORS, Backend, backend_class
from rag.config import GenerateSettings
from rag.errors import BackendError
from rag.types import Passage

if TYPE_CHECKING:
    from rag.embedding import Embedder


@runtime_checkable
class Generator(Backend, Protocol):
    """A backend's constructor takes the `GenerateSettings` and, by keyword, the pipeline's
    `embedder` (the extractive backend answers with it; the others ignore it)."""

    # An LLM that writes from any chat messages (`complete`), e.g. to condense a follow-up
    # question; the extractive backend only quotes passages.
    writes: ClassVar[bool] = True

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        """The whole reply to chat `messages`, at most `max_tokens` long (temperature 0)."""
        raise BackendError(f"the {self.name} generator writes no text of its own")


def build_generator(settings: GenerateSettings, *, embedder: Embedder) -> Generator:
    """The configured backend, not yet warmed up."""
    generator: Generator = backend_class(GENERATORS[settings.backend])(settings, embedder=embedder)
    return generator


__all__ = ["Generator", "build_generator"]
