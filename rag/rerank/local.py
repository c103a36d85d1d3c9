"""Qwen3-Reranker in-process with transformers: the official recipe, batched by token budget.

Each pair is tokenised as prefix + body + suffix (the body alone truncated to fit max_length),
pairs are sorted by length and packed into batches of at most `batch_tokens` padded tokens, left
padded, and scored from the last position's "yes"/"no" logits: P(yes) = softmax([no, yes])[1].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rag._models import loading, preferred_dtype, prepare_local_model, require_torch
from rag.backends import gpu_model_on_cpu
from rag.config import RerankSettings
from rag.errors import ModelLoadError
from rag.rerank import Reranker, _template

log = logging.getLogger(__name__)

_COMPILED_LENGTH_STEP = 64


class LocalQwen3Reranker(Reranker):
    name = "local"

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self.model_name = settings.model
        self._model: Any = None
        self._tokenizer: Any = None
        self.device = ""
        self._prefix: list[int] = []
        self._suffix: list[int] = []
        self._yes = self._no = -1
        self.parameter_count = 0
        self.max_length = settings.max_length
        self._forward: Any = None
        self._compiled = False
        self._pad_id = 0

    def warm_up(self) -> None:
        if self._model is not None:
            return
        path, device = prepare_local_model(self.settings.model, self.settings.device, kind="reranker")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with loading("reranker", self.settings.model):
            tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=preferred_dtype(device))
            model = model.to(device).eval()
        yes, no = tokenizer.convert_tokens_to_ids(_template.YES), tokenizer.convert_tokens_to_ids(_template.NO)
        if not isinstance(yes, int) or not isinstance(no, int) or yes < 0 or no < 0:
            raise ModelLoadError(f"reranker {self.settings.model!r}: its tokenizer has no 'yes'/'no' tokens")
        self._yes, self._no = yes, no
        self._prefix = tokenizer.encode(_template.PREFIX, add_special_tokens=False)
        self._suffix = tokenizer.encode(_template.SUFFIX, add_special_tokens=False)
        if len(self._prefix) + len(self._suffix) + 16 > self.settings.max_length:
            raise ModelLoadError(f"rerank.max_length {self.settings.max_length} leaves no room for the passage")
        self._tokenizer, self._model, self.device = tokenizer, model, device
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        self._forward = model
        if self.settings.compile and device.startswith("cuda"):
            # Fuses the norm/rotary/activation kernels that dominate an eager forward (bench/rerank.py
            # measures the gain); the first calls pay minutes of compilation.
            self._forward = require_torch().compile(model, dynamic=True)
            self._compiled = True
        self.parameter_count = int(sum(p.numel() for p in model.parameters()))
        self.max_length = self.settings.max_length
        slow = gpu_model_on_cpu(self)
        if slow:
            # 8k-token pairs would take a minute each: read fewer tokens of each passage.
            self.max_length = min(self.max_length, self.settings.cpu_max_length)
            log.warning("%s; rerank passages are cut to %d tokens", slow, self.max_length)

    def close(self) -> None:
        self._model = self._tokenizer = None

    def encode_pair(self, query: str, passage: str, instruction: str | None = None) -> list[int]:
        """Token ids for one pair: prefix and suffix whole, the body cut at its end to fit."""
        return self.encode_pairs(query, [passage], instruction)[0]

    def template_tokens(self, query: str, passage: str, *, instruction: str | None = None) -> int | None:
        return len(self.encode_pair(query, passage, instruction))

    def batches(self, sequences: list[list[int]]) -> list[list[int]]:
        """Indices grouped longest first, each group's padded size within the token budget."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
        groups: list[list[int]] = []
        for index in order:
            if groups:
                longest = len(sequences[groups[-1][0]])  # sorted: the group's first is its longest
                if longest * (len(groups[-1]) + 1) <= self.settings.batch_tokens:
                    groups[-1].append(index)
                    continue
            groups.append([index])
        return groups

    def encode_pairs(self, query: str, passages: Sequence[str], instruction: str | None = None) -> list[list[int]]:
        """encode_pair for many passages in one tokenizer call (the Rust tokenizer batches in parallel)."""
        self.warm_up()
        budget = self.max_length - len(self._prefix) - len(self._suffix)
        bodies = [_template.body(query, passage, instruction) for passage in passages]
        encoded = self._tokenizer(bodies, add_special_tokens=False, truncation=True, max_length=budget)["input_ids"]
        return [self._prefix + body + self._suffix for body in encoded]

    def _padded(self, sequences: list[list[int]]) -> tuple[Any, Any]:
        """Left-padded ids and mask built directly: tokenizer.pad is slow on the query path (bench/rerank.py)."""
        torch = require_torch()
        longest = max(len(s) for s in sequences)
        if self._compiled:
            longest = -(-longest // _COMPILED_LENGTH_STEP) * _COMPILED_LENGTH_STEP  # few distinct shapes
        ids = torch.full((len(sequences), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, longest - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            mask[row, longest - len(sequence) :] = 1
        if self.device.startswith("cuda"):
            ids, mask = ids.pin_memory(), mask.pin_memory()  # so the copy does not wait for the GPU
        return ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        if not passages:
            return []
        self.warm_up()
        torch = require_torch()
        sequences = self.encode_pairs(query, passages, instruction)
        groups = self.batches(sequences)
        results = []
        with torch.inference_mode():
            for group in groups:
                ids, mask = self._padded([sequences[i] for i in group])
                # use_cache=False: a KV cache is for generating; building one here only copies.
                logits = self._forward(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)
                last = logits.logits[:, -1, :]
                pair = torch.stack([last[:, self._no], last[:, self._yes]], dim=1).float()
                # Kept on the device: reading it now would make the CPU wait instead of padding the next batch.
                results.append(torch.softmax(pair, dim=1)[:, 1])
            p_yes = torch.cat(results).tolist()
        scores = [0.0] * len(sequences)
        for i, value in zip((i for group in groups for i in group), p_yes, strict=True):
            scores[i] = float(value)
        return scores
