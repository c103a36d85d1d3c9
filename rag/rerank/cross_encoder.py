"""sentence-transformers CrossEncoder: classic rerankers (BGE, gte, ms-marco) and Qwen3-Reranker.

For a causal-LM reranker (Qwen3-Reranker) CrossEncoder scores from the "yes"/"no" logits; its
folder's chat template knows only system/user/assistant, so we hand it the Qwen3 reranker
template for query/document messages (the instruction travels as the system message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag._models import loading, preferred_dtype, prepare_local_model
from rag.config import RerankSettings
from rag.rerank import Reranker, _template


class CrossEncoderReranker(Reranker):
    name = "cross-encoder"

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self.model_name = settings.model
        self.device = ""
        self._model: Any = None
        self._causal = False

    def warm_up(self) -> None:
        if self._model is not None:
            return
        path, device = prepare_local_model(self.settings.model, self.settings.device, kind="reranker")
        from sentence_transformers import CrossEncoder
        from transformers import AutoConfig

        with loading("reranker", self.settings.model):
            architectures = AutoConfig.from_pretrained(path).architectures or []
            self._causal = any(a.endswith("ForCausalLM") for a in architectures)
            processor_kwargs = {"chat_template": _template.CHAT_TEMPLATE} if self._causal else None
            self._model = CrossEncoder(
                path,
                device=device,
                max_length=self.settings.max_length,
                model_kwargs={"dtype": preferred_dtype(device)},
                processor_kwargs=processor_kwargs,
            )
        self.device = device
        self.parameter_count = int(sum(p.numel() for p in self._model.model.parameters()))

    def close(self) -> None:
        self._model = None

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        if not passages:
            return []
        self.warm_up()
        kwargs: dict[str, Any] = {}
        if self._causal:
            kwargs["prompt"] = instruction or self.settings.instruction
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False, **kwargs)
        return [float(s) for s in scores]
