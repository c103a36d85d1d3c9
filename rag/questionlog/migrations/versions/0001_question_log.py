"""The question log: answers, the passages they cited, and feedback on them.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("key_name", sa.String(200), nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("recall_mode", sa.String(10), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("found", sa.Boolean, nullable=False),
        sa.Column("generator", sa.String(200), nullable=False),
        sa.Column("degraded", sa.JSON, nullable=False),
        sa.Column("fell_back", sa.Boolean, nullable=False),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("total_s", sa.Float, nullable=False),
        sa.Column("rating", sa.String(4), nullable=True),
    )
    op.create_index("ix_answers_created_at", "answers", ["created_at"])
    op.create_index("ix_answers_day", "answers", ["day"])
    op.create_index("ix_answers_collection", "answers", ["collection"])
    op.create_index("ix_answers_rating", "answers", ["rating"])
    op.create_table(
        "citations",
        sa.Column("answer_id", sa.String(32), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("chunk_id", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.Column("file", sa.String(500), nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("pages", sa.JSON, nullable=False),
        sa.Column("cited", sa.Boolean, nullable=False),
        sa.Column("recall_score", sa.Float, nullable=False),
        sa.Column("rerank_score", sa.Float, nullable=True),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("answer_id", sa.String(32), sa.ForeignKey("answers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_name", sa.String(200), nullable=False),
        sa.Column("rating", sa.String(4), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("expected_file", sa.String(500), nullable=True),
        sa.Column("expected_page", sa.Integer, nullable=True),
    )
    op.create_index("ix_feedback_answer_id", "feedback", ["answer_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("citations")
    op.drop_table("answers")
