"""Embeddings from a server speaking OpenAI's `/v1/embeddings` (vLLM `--runner pooling`, TEI,
Infinity, a hosted API), for deployments where the API process should not hold a model.

The server embeds exactly the text it is sent, so the query prompt is applied here: for Qwen3
embedding models `Instruct: {task}\\nQuery:{query}` (the official format; documents get none),
for symmetric models nothing. Token counts for chunking come from the model's tokenizer file,
read with `tokenizers` (no torch in this process).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from rag._http import HttpBackend, backend_errors, bearer, check_status, retrying
from rag.config import EmbeddingSettings
from rag.embedding import Embedder, chosen_query_prompt
from rag.embedding._tokens import counting
from rag.errors import BadBackendResponse, ConfigError
from rag.qwen3 import DEFAULT_TASK, embedding_query_prompt, is_qwen3_embedding, qwen3_tokenizer_dir

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 8192


class OpenAIEmbedder(HttpBackend, Embedder):
    name = "openai"

    def __init__(self, settings: EmbeddingSettings, *, client: httpx.Client | None = None) -> None:
        super().__init__(client)
        self.settings = settings
        self.openai = settings.openai
        self.model_name = settings.model
        self.served_model = self.openai.served_model or settings.model
        self.who = f"embedder at {self.openai.url}"
        self._dimension = self.openai.dimension
        self._counter: Any = None

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.openai.url.rstrip("/") + "/",
            headers=bearer(self.openai.api_key),
            timeout=self.openai.timeout_s,
        )

    # -- facts --------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._embed(["dimension probe"]).shape[1])
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self.settings.max_seq_length or DEFAULT_MAX_TOKENS

    @property
    def query_prompt(self) -> str:
        """From the settings (embedding.query_format), or for `auto` from the configured model: the
        server embeds exactly what it is sent, and the name it serves the model under proves nothing."""
        chosen = chosen_query_prompt(self.settings)
        if chosen is not None:
            return chosen
        return embedding_query_prompt(DEFAULT_TASK) if is_qwen3_embedding(self.model_name) else ""

    def health(self) -> None:
        """Raise a BackendError unless the server lists its models (GET /v1/models)."""
        self._probe("models", min(5.0, self.openai.timeout_s))

    def count_tokens(self, text: str) -> int:
        if self._counter is None:
            self._counter = _load_tokenizer(self.openai.tokenizer, self.model_name)
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    # -- work ---------------------------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = self.settings.batch_size
        return np.concatenate([self._embed(list(texts[i : i + step])) for i in range(0, len(texts), step)])

    def embed_query(self, text: str, *, instruction: str | None = None) -> np.ndarray:
        prompt = embedding_query_prompt(instruction) if instruction else self.query_prompt
        return self._embed([prompt + text])[0]

    def query_tokens(self, text: str) -> int | None:
        return self._embed_counted([self.query_prompt + text])[1]

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._embed_counted(texts)[0]

    def _embed_counted(self, texts: list[str]) -> tuple[np.ndarray, int | None]:
        """The vectors, and the tokens the server says it read (usage.prompt_tokens), if it says."""
        body = {"model": self.served_model, "input": texts, "encoding_format": "float"}
        data: Any = None
        for attempt in retrying(self.openai.retries, self.openai.timeout_s):
            with attempt, backend_errors(self.who):
                response = self.client.post("embeddings", json=body)
                check_status(response, self.who)
                data = response.json()
        try:
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
            usage = data.get("usage") or {}
            prompt_tokens = int(usage["prompt_tokens"]) if "prompt_tokens" in usage else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadBackendResponse(f"{self.who}: not an embeddings response ({exc})") from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise BadBackendResponse(f"{self.who}: {len(vectors)} embeddings for {len(texts)} texts")
        if self._dimension is not None and vectors.shape[1] != self._dimension:
            raise BadBackendResponse(f"{self.who}: dimension {vectors.shape[1]}, expected {self._dimension}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # Cosine space: unit vectors whatever the server did.
        return vectors / np.where(norms > 0, norms, 1.0), prompt_tokens


def _load_tokenizer(tokenizer: str | None, model: str) -> Any:
    from tokenizers import Tokenizer

    if tokenizer is None:
        if "qwen3" not in model.lower():  # the configured model, never a served name
            raise ConfigError(
                f"embedding.openai.tokenizer is needed to count tokens for {model!r} "
                "(a tokenizer.json file or a folder holding one)"
            )
        path = qwen3_tokenizer_dir() / "tokenizer.json"
    else:
        path = Path(tokenizer).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"no tokenizer.json at {path} (embedding.openai.tokenizer)")
    return counting(Tokenizer.from_file(str(path)))
