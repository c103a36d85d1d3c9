# The rag-kb API image: slim, non-root, no compilers in the final layer, no model inside (the
# served stack's reranker, generator and embedder are vLLM services; see docker-compose.yml).
# The postgres extra is always in (the question log on PostgreSQL). EXTRAS=local adds in-process
# models (CPU torch + sentence-transformers) for an API that embeds itself instead of calling the
# `embedder` service.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rag rag
COPY ingest ingest
RUN if [ -n "$EXTRAS" ]; then pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi \
 && pip install ".[postgres${EXTRAS:+,$EXTRAS}]"

FROM python:${PYTHON}-slim
RUN useradd --create-home --uid 10001 rag && mkdir -p /data /app && chown rag /data
COPY --from=build /venv /venv
COPY configs /app/configs
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAG_CONFIG=/app/configs/served.yaml \
    ANONYMIZED_TELEMETRY=False
USER rag
WORKDIR /app
VOLUME /data
EXPOSE 8080
CMD ["rag", "serve", "--workers", "2"]
