"""Any sentence-transformers model in-process (Qwen3-Embedding, all-MiniLM-L6-v2, ...).

The model folder describes itself (sentence-transformers' config: prompts, pooling, max length),
so Qwen3-Embedding's recipe (the "Instruct: ...\\nQuery:" prompt, last-token pooling over left
padding, L2 normalisation, the appended <|endoftext|>) comes from its own files, not from code
here. This module only picks the prompt and the device, and refuses to embed queries of an
instruction model without an instruction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag._models import loading, preferred_dtype, prepare_local_model, require_torch
from rag.config import EmbeddingSettings
from rag.embedding import Embedder, chosen_query_prompt
from rag.embedding._tokens import counting
from rag.errors import ConfigError, ModelLoadError
from rag.qwen3 import embedding_query_prompt

log = logging.getLogger(__name__)


class SentenceTransformerEmbedder(Embedder):
    name = "sentence-transformers"

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.model_name = settings.model
        self._model: Any = None
        self._query_prompt = ""
        self._document_prompt = ""
        self._counter: Any = None
        self.device = ""

    # -- lifecycle ------------------------------------------------------------------------
    def warm_up(self) -> None:
        if self._model is not None:
            return
        path, device = prepare_local_model(self.settings.model, self.settings.device, kind="embedding")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelLoadError(f"sentence-transformers is not installed ({exc})") from None
        with loading("embedding model", self.settings.model):
            model = SentenceTransformer(
                path,
                device=device,
                trust_remote_code=False,
                model_kwargs={"dtype": preferred_dtype(device)},
            )
        if self.settings.max_seq_length is not None:
            model.max_seq_length = self.settings.max_seq_length
        _pin_plain_text(model)
        self._query_prompt = self._pick_query_prompt(model)
        self._document_prompt = model.prompts.get("document", "") or ""
        self._model = model
        self.device = device
        self.parameter_count = int(sum(p.numel() for p in model.parameters()))
        log.info("embedding model %s on %s (dim %d)", self.model_name, device, self.dimension)

    def close(self) -> None:
        self._model = None

    def _pick_query_prompt(self, model: Any) -> str:
        chosen = chosen_query_prompt(self.settings)
        if chosen is not None:
            return chosen
        declared = model.prompts.get("query", "")
        if declared:
            return str(declared)
        if _uses_last_token_pooling(model):
            raise ConfigError(
                f"embedding model {self.settings.model!r} pools the last token (an instruction "
                "embedder) but declares no 'query' prompt: set embedding.query_instruction (its task) "
                "or embedding.query_format"
            )
        return ""  # a symmetric model (all-MiniLM-L6-v2 and the like): queries are plain text

    @property
    def model(self) -> Any:
        if self._model is None:
            self.warm_up()
        return self._model

    # -- facts ----------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"embedding model {self.model_name!r} does not state its dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        specials = len(self.model.tokenizer("", add_special_tokens=True)["input_ids"])
        return int(self.model.max_seq_length) - specials

    @property
    def query_prompt(self) -> str:
        self.model  # noqa: B018 - loads the model, which decides the prompt
        return self._query_prompt

    def count_tokens(self, text: str) -> int:
        return len(self._token_counter().encode(text, add_special_tokens=False).ids)

    def _token_counter(self) -> Any:
        """The model's fast tokenizer core, counting the text alone (see `counting`)."""
        if self._counter is None:
            from tokenizers import Tokenizer

            self._counter = counting(Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str()))
        return self._counter

    # -- work -----------------------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode(list(texts), self._document_prompt)

    def embed_query(self, text: str, *, instruction: str | None = None) -> np.ndarray:
        prompt = embedding_query_prompt(instruction) if instruction else self.query_prompt
        return self._encode([text], prompt)[0]

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        torch = require_torch()
        with torch.inference_mode():
            vectors = self.model.encode(
                texts,
                prompt=prompt or None,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def _pin_plain_text(model: Any) -> None:
    """Embed text as text, never through a chat template.

    sentence-transformers 6 renders plain strings through the tokenizer's chat template whenever
    the tokenizer has one (the "message" modality), and Qwen3 tokenizers do. Qwen3-Embedding was
    trained on raw "Instruct: ...\nQuery:{q}<|endoftext|>" sequences; wrapping them in
    <|im_start|>user ... <|im_end|> silently changes every vector.
    """
    for module in model:
        modalities = getattr(module, "modality_config", None)
        if isinstance(modalities, dict) and "message" in modalities and "text" in modalities:
            del modalities["message"]


def _uses_last_token_pooling(model: Any) -> bool:
    for module in model:
        if type(module).__name__ == "Pooling":
            # sentence-transformers 6 keeps the mode(s) in `pooling_mode`; 3-5 had boolean flags.
            mode = getattr(module, "pooling_mode", None)
            modes = mode if isinstance(mode, (list, tuple)) else [mode]
            return "lasttoken" in modes or bool(getattr(module, "pooling_mode_lasttoken", False))
    return False
