"""The question log: every answer given (question, query searched, cited passages, found or
refused, degraded stages, timings, the key's name) and the feedback on it, in a real database
through SQLAlchemy: SQLite under data_dir by default, PostgreSQL when `log.url` names one.

Logging never costs an answer: a write that fails (the database down, full or read-only) marks the
answer `degraded: ["log"]` and the log rests for `log.retry_after_s`, so later answers do not each
wait on it. The schema is created and migrated here, by Alembic, on first use, one process at a
time (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from rag.config import LogSettings, RecallMode, Settings
from rag.errors import AnswerNotFound, QuestionLogOff, QuestionLogUnavailable
from rag.questionlog.schema import answers, citations, feedback
from rag.types import Answer

log = logging.getLogger("rag.questionlog")

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_FILE = "questions.sqlite3"
# Any fixed number: PostgreSQL's advisory lock that lets one process at a time migrate.
_MIGRATION_LOCK = 7_202_611
_PURGE_EVERY_S = 3600.0
# How long a SQLite writer waits for another process's write lock before the write fails.
_SQLITE_BUSY_S = 5.0

Rating = Literal["up", "down"]
T = TypeVar("T")


@dataclass(frozen=True)
class Asked:
    """Where and how a question was asked: what the log keeps beside the Answer."""

    channel: str  # api.ask | api.chat | cli.ask | cli.chat
    key_name: str
    collection: str
    recall_mode: RecallMode

    @classmethod
    def of(
        cls, settings: Settings, channel: str, key_name: str, collection: str | None, mode: RecallMode | None
    ) -> Asked:
        return cls(channel, key_name, collection or settings.collection, mode or settings.recall.mode)


@dataclass(frozen=True)
class Feedback:
    rating: Rating
    comment: str | None = None
    expected_file: str | None = None
    expected_page: int | None = None


def database_url(settings: Settings) -> str:
    if settings.log.url is not None:
        return settings.log.url.get_secret_value()
    return f"sqlite:///{(settings.data_dir / SQLITE_FILE).resolve()}"


def make_engine(url: str, settings: LogSettings) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_S})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own transaction handling off, so that `begin` below decides: every
            # transaction takes the write lock up front, and writers from several API worker
            # processes queue (up to the busy timeout) instead of failing on a stale snapshot.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL stays consistent
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {"connect_timeout": settings.connect_timeout_s} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creating it in an empty database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class QuestionLog:
    """The log of one service (or CLI run). Thread-safe; one engine (a connection pool) each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.log
        self.enabled = settings.log.enabled
        self.engine: Engine | None = None
        if self.enabled:
            if settings.log.url is None:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = make_engine(database_url(settings), settings.log)
        self._migrated = False
        self._migrating = threading.Lock()
        self._resting_until = 0.0
        self._purged_at = 0.0

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    @property
    def where(self) -> str:
        """The database, for logs and `rag log`: its URL without a password."""
        if self.engine is None:
            return "off"
        return self.engine.url.render_as_string(hide_password=True)

    def prepare(self) -> None:
        """Migrate and purge now (at start-up) rather than on the first answer; failures only warn."""
        if not self.enabled:
            return
        try:
            self._run(lambda connection: None)
            self.purge()
        except QuestionLogUnavailable as exc:
            log.warning("question log %s not ready: %s (answers are marked degraded: log)", self.where, exc)

    # -- writing answers --------------------------------------------------------------------
    def record(self, answer: Answer, asked: Asked) -> Answer:
        """The answer, recorded (`logged`), or marked `degraded: ["log"]` when it could not be."""
        if not self.enabled:
            return answer
        if time.monotonic() < self._resting_until:
            return replace(answer, degraded=(*answer.degraded, "log"))
        try:
            self._run(lambda connection: _insert_answer(connection, answer, asked))
        except QuestionLogUnavailable as exc:
            self._resting_until = time.monotonic() + self.settings.retry_after_s
            # The id and the reason, never the question: the log may be off for privacy elsewhere.
            log.warning("question log: answer %s not recorded: %s", answer.answer_id, exc)
            return replace(answer, degraded=(*answer.degraded, "log"))
        self._resting_until = 0.0
        if time.monotonic() - self._purged_at > _PURGE_EVERY_S:
            self.purge()
        return replace(answer, logged=True)

    def recorded(self, events: Iterator[str | Answer], asked: Asked) -> Iterator[str | Answer]:
        """An answer stream (text pieces, then the Answer) with the Answer recorded on its way out."""
        for item in events:
            yield self.record(item, asked) if isinstance(item, Answer) else item

    # -- feedback ---------------------------------------------------------------------------
    def collection_of(self, answer_id: str) -> str:
        """The collection a logged answer came from (AnswerNotFound when none has this id)."""
        found = self.read(
            lambda connection: connection.execute(
                select(answers.c.collection).where(answers.c.id == answer_id)
            ).scalar_one_or_none()
        )
        if found is None:
            raise AnswerNotFound(f"no answer {answer_id!r} in the question log")
        return str(found)

    def rate(self, answer_id: str, given: Feedback, key_name: str) -> None:
        """Keep feedback on an answer; its latest rating is the answer's."""

        def write(connection: Connection) -> bool:
            changed = connection.execute(update(answers).where(answers.c.id == answer_id).values(rating=given.rating))
            if changed.rowcount == 0:
                return False
            connection.execute(
                insert(feedback).values(
                    answer_id=answer_id,
                    created_at=datetime.now(UTC),
                    key_name=key_name,
                    rating=given.rating,
                    comment=given.comment,
                    expected_file=given.expected_file,
                    expected_page=given.expected_page,
                )
            )
            return True

        if not self._run(write):
            raise AnswerNotFound(f"no answer {answer_id!r} in the question log")

    # -- retention --------------------------------------------------------------------------
    def purge(self) -> int:
        """Delete entries older than the retention; how many answers went."""
        self._purged_at = time.monotonic()
        if not self.settings.retention_days:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)

        def old_ones(connection: Connection) -> int:
            old = select(answers.c.id).where(answers.c.created_at < cutoff)
            connection.execute(delete(citations).where(citations.c.answer_id.in_(old)))
            connection.execute(delete(feedback).where(feedback.c.answer_id.in_(old)))
            return int(connection.execute(delete(answers).where(answers.c.created_at < cutoff)).rowcount)

        try:
            gone = self._run(old_ones)
        except QuestionLogUnavailable as exc:
            log.warning("question log: retention purge failed: %s", exc)
            return 0
        if gone:
            log.info("question log: %d answers past %d days deleted", gone, self.settings.retention_days)
        return gone

    # -- the database -----------------------------------------------------------------------
    def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a transaction (reports use this); QuestionLogOff when the log is off."""
        return self._run(work)

    def _run(self, work: Callable[[Connection], T]) -> T:
        if self.engine is None:
            raise QuestionLogOff("the question log is off here (log.enabled: false): nothing is kept")
        try:
            self._migrate_once(self.engine)
            with self.engine.begin() as connection:
                return work(connection)
        except (SQLAlchemyError, OSError, CommandError) as exc:
            raise QuestionLogUnavailable(f"{self.where}: {_reason(exc)}") from None

    def _migrate_once(self, engine: Engine) -> None:
        if self._migrated:
            return
        with self._migrating:
            if not self._migrated:
                migrate(engine)
                self._migrated = True


def _insert_answer(connection: Connection, answer: Answer, asked: Asked) -> None:
    now = datetime.now(UTC)
    connection.execute(
        insert(answers).values(
            id=answer.answer_id,
            created_at=now,
            day=now.date().isoformat(),
            channel=asked.channel,
            key_name=asked.key_name,
            collection=asked.collection,
            recall_mode=asked.recall_mode,
            question=answer.question,
            query=answer.query or answer.question,
            answer=answer.text,
            found=answer.found,
            generator=answer.generator,
            degraded=list(answer.degraded),
            fell_back=bool(answer.degraded),
            timings={k: round(v, 4) for k, v in answer.timings.items()},
            total_s=round(sum(answer.timings.values()), 4),
        )
    )
    if answer.citations:
        connection.execute(
            insert(citations),
            [
                {
                    "answer_id": answer.answer_id,
                    "n": c.n,
                    "chunk_id": c.passage.chunk_id,
                    "doc_id": str(c.passage.metadata.get("doc_id", "")),
                    "file": c.passage.file_name,
                    "page": c.passage.page,
                    "pages": list(c.passage.metadata.get("pages", []) or []),
                    "cited": c.cited,
                    "recall_score": c.passage.recall_score,
                    "rerank_score": c.passage.rerank_score,
                }
                for c in answer.citations
            ],
        )


def _reason(exc: BaseException) -> str:
    """What went wrong, without the statement or its parameters (they hold what users asked)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ''}"
    if isinstance(exc, SQLAlchemyError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
