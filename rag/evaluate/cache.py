"""Vectors of corpus texts kept between evaluation runs, keyed by model and text.

Encoding SciFact's 5,183 abstracts takes minutes on a CPU; a second run (another recall mode,
another fusion weight) should take seconds. diskcache gives a process-safe SQLite-backed store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag.embedding import Embedder


class CachedEncoder:
    def __init__(self, embedder: Embedder, folder: Path, *, batch: int = 256, progress: bool = True) -> None:
        import diskcache

        self.embedder = embedder
        self.cache = diskcache.Cache(str(folder))
        self.batch = batch
        self.progress = progress
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> str:
        model = f"{self.embedder.model_name}|{self.embedder.max_tokens}"
        return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.embedder.warm_up()
        keys = [self._key(t) for t in texts]
        found: dict[int, np.ndarray] = {}
        for i, key in enumerate(keys):
            raw = self.cache.get(key)
            if raw is not None:
                found[i] = np.frombuffer(raw, dtype=np.float32)
        missing = [i for i in range(len(texts)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        with tqdm(
            total=len(missing), desc="encoding corpus", unit="text", disable=not self.progress or not missing
        ) as bar:
            for start in range(0, len(missing), self.batch):
                part = missing[start : start + self.batch]
                vectors = np.asarray(self.embedder.embed_documents([texts[i] for i in part]), dtype=np.float32)
                for i, vector in zip(part, vectors, strict=True):
                    found[i] = vector
                    self.cache.set(keys[i], vector.tobytes())
                bar.update(len(part))
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([found[i] for i in range(len(texts))])

    def close(self) -> None:
        self.cache.close()
