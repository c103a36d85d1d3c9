"""A generator LLM in-process with transformers (Qwen3 chat template, thinking off), streaming.

A GPU workload: a 1.7B model on 2 CPU cores writes a few tokens per second. It is here for a
single machine with a GPU; a served model (the openai backend) is the usual production choice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rag._models import loading, preferred_dtype, prepare_local_model
from rag.backends import gpu_model_on_cpu
from rag.config import GenerateSettings
from rag.errors import BackendError
from rag.generate import Generator
from rag.generate.prompt import build_messages
from rag.types import Passage

if TYPE_CHECKING:
    from rag.embedding import Embedder

log = logging.getLogger(__name__)

_GENERATION_TIMEOUT_S = 600.0  # between two tokens: only a wedged model gets near it


class LocalGenerator(Generator):
    name = "local"

    def __init__(self, settings: GenerateSettings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.model_name = settings.model
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
        slow = gpu_model_on_cpu(self)
        if slow:
            log.warning("%s; answers will come a few tokens per second", slow)

    def close(self) -> None:
        self._model = self._tokenizer = None

    def prompt_ids(self, question: str, passages: Sequence[Passage]) -> Any:
        return self._message_ids(build_messages(question, passages))

    def _message_ids(self, messages: list[dict[str, str]]) -> Any:
        self.warm_up()
        return self._tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=True,
            enable_thinking=False,
            return_tensors="pt",
            return_dict=True,
        )

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        return self._generate(self.prompt_ids(question, passages), self.settings.max_tokens, self.settings.temperature)

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        return "".join(self._generate(self._message_ids(messages), max_tokens, 0.0))

    def _generate(self, prompt: Any, max_tokens: int, temperature: float) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = prompt.to(self.device)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=_GENERATION_TIMEOUT_S
        )
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    self._model.generate(
                        **inputs,
                        streamer=streamer,
                        max_new_tokens=max_tokens,
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
