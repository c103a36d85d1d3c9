"""Generators: write the answer from the top passages. Backends behind one protocol, picked by name.

`stream` yields the answer text piece by piece; joined, the pieces are the whole answer. A
backend that cannot answer raises a BackendError (the pipeline then answers extractively and
says so, or fails, as configured).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.config import GenerateSettings
from rag.errors import ConfigError
from rag.types import Passage

if TYPE_CHECKING:
    from rag.embedding import Embedder


@runtime_checkable
class Generator(Protocol):
    name: str

    def warm_up(self) -> None: ...

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...

    def close(self) -> None: ...


def build_generator(settings: GenerateSettings, *, embedder: Embedder) -> Generator:
    """A closed set of backends mapped in code; configuration never names an import path."""
    if settings.backend == "extractive":
        from rag.generate.extractive import ExtractiveGenerator

        return ExtractiveGenerator(embedder, settings)
    if settings.backend == "openai":
        from rag.generate.openai_http import OpenAIChatGenerator

        return OpenAIChatGenerator(settings)
    if settings.backend == "local":
        from rag.generate.local import LocalGenerator

        return LocalGenerator(settings)
    raise ConfigError(f"unknown generate backend {settings.backend!r}")


__all__ = ["Generator", "build_generator"]
