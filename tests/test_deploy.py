"""The served stack's files: docker-compose.yml resolved by a real compose binary (no engine runs
here), .env.example documenting every variable it uses, the image's shape, and the served API
importing no model library (the image has none)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .support.profiles import PROJECT

COMPOSE = PROJECT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT / ".env.example"
RERANKER_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip("no compose binary (make test installs Debian's docker-compose)")


def resolved(*profiles: str) -> dict:
    command = [*compose_command(), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE)]
    for profile in profiles:
        command += ["--profile", profile]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "VLLM_", "API_"))}
    result = subprocess.run([*command, "config"], capture_output=True, text=True, env=env, cwd=PROJECT, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_resolves_with_every_service_healthy_before_the_api() -> None:
    config = resolved()
    # Compose v2 leaves inactive profiles out of `config`; docker-compose 1.29 lists them, marked.
    services = {name: s for name, s in config["services"].items() if not s.get("profiles")}
    assert set(services) == {"reranker", "generator", "chroma", "postgres", "api"}
    embedder = resolved("embedder")["services"]["embedder"]
    assert embedder["profiles"] == ["embedder"] and "--runner=pooling" in embedder["command"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert not str(service.get("image", "")).endswith(":latest") or name == "api", name
    for name in ("reranker", "generator"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        assert "hf-cache" in str(services[name]["volumes"])
    reranker = services["reranker"]["command"]
    assert reranker[0] == "Qwen/Qwen3-Reranker-0.6B" and "--runner=pooling" in reranker
    overrides = next(arg for arg in reranker if arg.startswith("--hf-overrides="))
    assert json.loads(overrides.split("=", 1)[1]) == RERANKER_OVERRIDES
    api = services["api"]
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "chroma": "service_healthy",
        "postgres": "service_healthy",
        "reranker": "service_healthy",
        "generator": "service_healthy",
    }
    # The question log in the postgres service, on a volume of its own.
    assert api["environment"]["RAG_LOG__URL"].startswith("postgresql+psycopg://rag:change-me-postgres@postgres:5432/")
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "postgres-data" in str(services["postgres"]["volumes"])
    assert api["command"] == ["rag", "serve", "--workers", "2"]
    assert api["environment"]["RAG_CONFIG"] == "/app/configs/served.yaml"
    assert api["deploy"]["resources"]["limits"]["memory"]
    assert "chroma-data" in str(services["chroma"]["volumes"])


def test_env_example_documents_every_variable_the_compose_file_reads() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    documented = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^\w+=", line)}
    assert used <= documented, sorted(used - documented)


def test_the_image_runs_as_a_user_without_build_tools_or_models() -> None:
    stages = re.split(r"(?m)^FROM ", (PROJECT / "Dockerfile").read_text())
    final = stages[-1]
    assert re.search(r"(?m)^USER rag$", final) and "COPY --from=build /venv /venv" in final
    assert not re.search(r"apt-get|gcc|build-essential|huggingface|\.safetensors", final)
    assert "configs/served.yaml" in final


def test_the_served_api_imports_no_model_library(tmp_path: Path) -> None:
    """The image has no torch: the served profile must build and warm its pipeline without it."""
    script = """
import sys
for name in ("torch", "transformers", "sentence_transformers"):
    sys.modules[name] = None  # any import of these now fails
from pathlib import Path
from rag.api.app import create_app
from rag.config import load_settings
from rag.pipeline import RagPipeline
settings = load_settings(Path("configs/served.yaml"), environ={"RAG_DATA_DIR": sys.argv[1]})
pipeline = RagPipeline(settings)
pipeline.warm_up()
create_app(settings, pipeline=pipeline)
print(type(pipeline.embedder).__name__, pipeline.reranker.name, pipeline.generator.name,
      pipeline.embedder.count_tokens("数据出境 error 809"))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["OpenAIEmbedder", "vllm", "openai"] and int(result.stdout.split()[3]) > 3


def test_the_gpu_defaults_start_on_one_card() -> None:
    """Every vLLM service on GPU 0 by default, their memory shares adding up to under 0.9 (each is a
    share of the whole card: two servers that ask for more than it has, and the second fails)."""
    services = resolved("embedder")["services"]
    shares = []
    for name in ("reranker", "generator", "embedder"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["device_ids"] == ["0"], name
        [share] = [arg.split("=", 1)[1] for arg in services[name]["command"] if arg.startswith("--gpu-memory")]
        shares.append(float(share))
    assert sum(shares) < 0.9, shares


def test_the_cpu_profile_serves_the_reranker_with_our_template_and_an_api_on_configs_cpu() -> None:
    services = resolved("cpu")["services"]
    reranker = services["reranker-cpu"]
    assert reranker["profiles"] == ["cpu"] and "vllm-cpu" in reranker["image"]
    assert "--chat-template=/templates/qwen3_reranker.jinja" in reranker["command"]
    mounts = " ".join(str(volume) for volume in reranker["volumes"])  # the template file the project ships
    assert str(PROJECT / "rag" / "rerank" / "qwen3_reranker.jinja") in mounts and "/templates/" in mounts
    assert "--convert=embed" in services["embedder-cpu"]["command"]
    api = services["api-cpu"]
    assert api["environment"]["RAG_CONFIG"] == "/app/configs/cpu.yaml"
    assert set(api["depends_on"]) == {"chroma", "postgres", "reranker-cpu", "embedder-cpu"}
    served = load_cpu_profile(api["environment"])
    assert served.rerank.backend == "vllm" and served.rerank.vllm.template == "server"
    assert served.rerank.vllm.url == "http://reranker-cpu:8000" and served.rerank.time_budget_s
    assert served.embedding.query_format == "qwen3" and served.generate.backend == "extractive"
    assert "deploy" not in reranker  # no GPU reserved


def load_cpu_profile(environment: dict[str, str]):
    from rag.config import load_settings

    return load_settings(PROJECT / "configs" / "cpu.yaml", environ={k: str(v) for k, v in environment.items()})


def test_the_served_vllm_image_is_the_release_line_the_tests_run() -> None:
    tested = re.search(r"^vllm-cpu==(\d+\.\d+)\.", (PROJECT / "requirements" / "vllm-cpu.txt").read_text(), re.M)
    assert tested is not None
    services = resolved("cpu")["services"]
    for name in ("reranker", "generator", "reranker-cpu", "embedder-cpu"):
        assert f":v{tested.group(1)}." in services[name]["image"], name
