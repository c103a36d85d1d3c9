"""A generator LLM in-process with transformers (Qwen3 chat template, thinking off), streaming.

A GPU workload: a 1.7B model on 2 CPU cores writes a few tokens per second. It is here for a
single machine with a GPU; a served model (the openai backend) is the usual production choice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from rag._models import CPU_HEAVY_PARAMETERS, loading, preferred_dtype, prepare_local_model
from rag.config import GenerateSettings
from rag.errors import BackendError
from rag.generate.prompt import build_messages
from rag.types import Passage

log = logging.getLogger(__name__)

_GENERATION_TIMEOUT_S = 600.0  # between two tokens: only a wedged model gets near it


class LocalGenerator:
    name = "local"

    def __init__(self, settings: GenerateSettings) -> None:
        self.settings = settings
        self._model: Any = None
        self._tokenizer: Any = None
        self.device = ""
        self.parameter_count = 0
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def warm_up(self) -> None:
        if self._model is not None:
            return
        path, device = prepare_local_model(self.settings.model, self.settings.device, kind="generator")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with loading("generator", self.settings.model):
            tokenizer = AutoTokenizer.from_pretrained(path)
            model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=preferred_dtype(device))
            model = model.to(device).eval()
        self._tokenizer, self._model, self.device = tokenizer, model, device
        self.parameter_count = int(sum(p.numel() for p in model.parameters()))
        if device == "cpu" and self.parameter_count > CPU_HEAVY_PARAMETERS:
            log.warning(
                "generator %s (%.0fM parameters) runs on the CPU: expect a few tokens per second; "
                "use a GPU or a served model (generate.backend: openai)",
                self.settings.model,
                self.parameter_count / 1e6,
            )

    def close(self) -> None:
        self._model = self._tokenizer = None

    def prompt_ids(self, question: str, passages: Sequence[Passage]) -> Any:
        self.warm_up()
        return self._tokenizer.apply_chat_template(
            build_messages(question, passages),
            add_generation_prompt=True,
            enable_thinking=False,
            return_tensors="pt",
            return_dict=True,
        )

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self.prompt_ids(question, passages).to(self.device)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=_GENERATION_TIMEOUT_S
        )
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self.settings.temperature}
            if self.settings.temperature > 0
            else {"do_sample": False}
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self._model.generate(
                        **inputs,
                        streamer=streamer,
                        max_new_tokens=self.settings.max_tokens,
                        pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
                        **sampling,
                    )
            except BaseException as exc:  # surfaced in the reading thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="rag-generate", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise BackendError(f"local generator {self.settings.model!r} failed: {failure[0]}") from failure[0]
