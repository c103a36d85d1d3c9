"""The question log's tables, as SQLAlchemy Core (one definition for SQLite and PostgreSQL).

The migrations under migrations/versions create and change these; this module is what the code
reads and writes through. `tests/test_questionlog.py` checks that the migrated database has
every column declared here.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

answers = Table(
    "answers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("day", String(10), nullable=False, index=True),  # UTC date: groups by day alike in both databases
    Column("channel", String(20), nullable=False),  # api.ask | api.chat | cli.ask | cli.chat
    Column("key_name", String(200), nullable=False),  # the API key's name, never the key
    Column("collection", String(200), nullable=False, index=True),
    Column("recall_mode", String(10), nullable=False),
    Column("question", Text, nullable=False),
    Column("query", Text, nullable=False),  # what was searched (a follow-up made standalone)
    Column("answer", Text, nullable=False),
    Column("found", Boolean, nullable=False),
    Column("generator", String(200), nullable=False),
    Column("degraded", JSON, nullable=False),  # list of stages that fell back
    Column("fell_back", Boolean, nullable=False),  # degraded is not empty (counted in SQL)
    Column("timings", JSON, nullable=False),  # seconds per stage
    Column("total_s", Float, nullable=False),
    Column("rating", String(4), nullable=True, index=True),  # the latest feedback's: up | down
)

citations = Table(
    "citations",
    metadata,
    Column("answer_id", String(32), ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("chunk_id", String(200), nullable=False),
    Column("doc_id", String(200), nullable=False),
    Column("file", String(500), nullable=False),
    Column("page", Integer, nullable=True),
    Column("pages", JSON, nullable=False),
    Column("cited", Boolean, nullable=False),
    Column("recall_score", Float, nullable=False),
    Column("rerank_score", Float, nullable=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("answer_id", String(32), ForeignKey("answers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("key_name", String(200), nullable=False),
    Column("rating", String(4), nullable=False),
    Column("comment", Text, nullable=True),
    Column("expected_file", String(500), nullable=True),
    Column("expected_page", Integer, nullable=True),
)
