"""Where the project and the shared test data are, and the settings tests run with."""

from __future__ import annotations

import os
from pathlib import Path

from rag.config import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent.parent
OFFLINE_PROFILE = PROJECT / "configs" / "offline-minilm.yaml"
# Read at import, before the autouse fixture clears RAG_* variables.
_SHARED_ENV = os.environ.get("RAG_SHARED_DIR")


def shared_dir() -> Path | None:
    for candidate in (_SHARED_ENV, PROJECT.parent / "shared"):
        if candidate and (Path(candidate) / "corpus").is_dir():
            return Path(candidate)
    return None


def offline_env(data_dir: Path) -> dict[str, str]:
    """The environment that points `rag` (a subprocess) at the offline profile and `data_dir`."""
    return {"RAG_CONFIG": str(OFFLINE_PROFILE), "RAG_DATA_DIR": str(data_dir)}


def offline_settings(data_dir: Path, **environ: str) -> Settings:
    return load_settings(OFFLINE_PROFILE, environ={"RAG_DATA_DIR": str(data_dir), **environ})


def local_reranker_env(model_dir: Path | str) -> dict[str, str]:
    """The settings (as environment) for the `local` reranker on the model in `model_dir`, on the CPU
    (most often the tiny Qwen3 stand-in: `local_reranker_env(tiny_models["reranker"])`)."""
    return {"RAG_RERANK__BACKEND": "local", "RAG_RERANK__MODEL": str(model_dir), "RAG_RERANK__DEVICE": "cpu"}
