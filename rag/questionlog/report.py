"""Reading the question log back: statistics over a window of days (`rag log stats`, GET /v1/stats,
the web page's Insights) and rated answers exported as a question set `rag eval --qa` reads, or
as a review list (`rag log export`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Select, and_, case, func, select

from rag.questionlog.schema import answers, citations, feedback
from rag.questionlog.store import QuestionLog, Rating

ExportFormat = Literal["qa", "review"]
_TOP = 10
_CJK = re.compile(r"[\u3400-\u9fff]")


def stats(question_log: QuestionLog, *, days: int = 30, collection: str | None = None) -> dict[str, Any]:
    """Questions per day, refusal, degraded and down-vote rates, and the questions that most often
    were refused or voted down, over the last `days` days (UTC)."""
    first_day = _first_day(days)
    window = answers.c.day >= first_day
    if collection is not None:
        window = and_(window, answers.c.collection == collection)

    def read(connection: Connection) -> dict[str, Any]:
        refused = case((answers.c.found.is_(False), 1), else_=0)
        down = case((answers.c.rating == "down", 1), else_=0)
        up = case((answers.c.rating == "up", 1), else_=0)
        degraded = case((answers.c.fell_back.is_(True), 1), else_=0)
        per_day = connection.execute(
            select(answers.c.day, func.count(), func.sum(refused), func.sum(degraded), func.sum(down), func.sum(up))
            .where(window)
            .group_by(answers.c.day)
            .order_by(answers.c.day)
        ).all()
        return {
            "per_day": [
                {
                    "day": day,
                    "questions": n,
                    "refused": int(r or 0),
                    "degraded": int(g or 0),
                    "down": int(d or 0),
                    "up": int(u or 0),
                }
                for day, n, r, g, d, u in per_day
            ],
            "top_refused": _top(connection, select(answers.c.question).where(window, answers.c.found.is_(False))),
            "top_down_voted": _top(connection, select(answers.c.question).where(window, answers.c.rating == "down")),
        }

    found = question_log.read(read)
    questions = sum(day["questions"] for day in found["per_day"])
    refused = sum(day["refused"] for day in found["per_day"])
    down = sum(day["down"] for day in found["per_day"])
    up = sum(day["up"] for day in found["per_day"])
    degraded = sum(day["degraded"] for day in found["per_day"])
    return {
        "days": days,
        "since": first_day,
        "collection": collection,
        "questions": questions,
        "refused": refused,
        "refusal_rate": _share(refused, questions),
        "degraded": degraded,
        "degraded_rate": _share(degraded, questions),
        "rated": up + down,
        "up": up,
        "down": down,
        "down_vote_rate": _share(down, up + down),
        "per_day": found["per_day"],
        "top_refused": found["top_refused"],
        "top_down_voted": found["top_down_voted"],
    }


def _first_day(days: int) -> str:
    """The first UTC day of a window of `days` days ending today (answers.day's format)."""
    return (datetime.now(UTC) - timedelta(days=days - 1)).date().isoformat()


def _top(connection: Connection, questions: Select[Any]) -> list[dict[str, Any]]:
    asked = questions.subquery()
    rows = connection.execute(
        select(asked.c.question, func.count().label("n"))
        .group_by(asked.c.question)
        .order_by(func.count().desc(), asked.c.question)
        .limit(_TOP)
    ).all()
    return [{"question": question, "count": n} for question, n in rows]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def export(
    question_log: QuestionLog, *, rating: Rating, output: ExportFormat, days: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Rated answers as question-set lines (`qa`: gold file and pages from the feedback's expected
    file and page, else from the first passage the answer cited) or review lines; and how many rated
    answers a question set had to leave out (no gold to give them)."""
    rated = answers.c.rating == rating
    if days is not None:
        rated = and_(rated, answers.c.day >= _first_day(days))

    def read(connection: Connection) -> list[dict[str, Any]]:
        rows = connection.execute(select(answers).where(rated).order_by(answers.c.created_at)).mappings().all()
        ids = [row["id"] for row in rows]
        cited: dict[str, list[dict[str, Any]]] = {}
        for c in connection.execute(
            select(citations).where(citations.c.answer_id.in_(ids)).order_by(citations.c.answer_id, citations.c.n)
        ).mappings():
            cited.setdefault(c["answer_id"], []).append(dict(c))
        latest: dict[str, dict[str, Any]] = {}
        for f in connection.execute(
            select(feedback).where(feedback.c.answer_id.in_(ids)).order_by(feedback.c.id)
        ).mappings():
            latest[f["answer_id"]] = dict(f)  # in id order: the last one stays
        return [{**row, "citations": cited.get(row["id"], []), "feedback": latest.get(row["id"], {})} for row in rows]

    entries = question_log.read(read)
    if output == "review":
        return [_review_line(entry) for entry in entries], 0
    lines = [line for line in (_qa_line(entry) for entry in entries) if line is not None]
    return lines, len(entries) - len(lines)


def _qa_line(entry: dict[str, Any]) -> dict[str, Any] | None:
    given = entry["feedback"]
    if given.get("expected_file"):
        doc = given["expected_file"]
        pages = [given["expected_page"]] if given.get("expected_page") else []
    else:
        if entry["rating"] != "up" or not entry["found"]:
            return None  # a wrong or refused answer's own passage is no gold
        sources = [c for c in entry["citations"] if c["cited"]] or entry["citations"]
        if not sources:
            return None
        doc, pages = (
            sources[0]["file"],
            list(sources[0]["pages"] or ([sources[0]["page"]] if sources[0]["page"] else [])),
        )
    return {
        "id": f"log-{entry['id'][:12]}",
        "question": entry["question"],
        "lang": "zh" if _CJK.search(entry["question"]) else "en",
        "doc": doc,
        "pages": pages,
        "kind": f"rated-{entry['rating']}",
        "collection": entry["collection"],
        "answer_id": entry["id"],
    }


def _review_line(entry: dict[str, Any]) -> dict[str, Any]:
    given = entry["feedback"]
    return {
        "answer_id": entry["id"],
        "asked_at": _iso(entry["created_at"]),
        "collection": entry["collection"],
        "key_name": entry["key_name"],
        "question": entry["question"],
        "query": entry["query"],
        "answer": entry["answer"],
        "found": entry["found"],
        "degraded": entry["degraded"],
        "cited": [
            {"n": c["n"], "file": c["file"], "page": c["page"], "cited": c["cited"], "chunk_id": c["chunk_id"]}
            for c in entry["citations"]
        ],
        "rating": entry["rating"],
        "comment": given.get("comment"),
        "expected_file": given.get("expected_file"),
        "expected_page": given.get("expected_page"),
    }


def _iso(moment: datetime) -> str:
    # SQLite hands back naive datetimes; everything was written in UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
