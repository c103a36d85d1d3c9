"""An evaluation report three ways: a terminal table, JSON, and a markdown page with a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from rag.backends import NO_RERANKER
from rag.evaluate.metrics import CURVE_DEPTHS, METRICS

STAGE_ORDER = ("embed", "recall", "rerank", "generate")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows, shared by the terminal table and the markdown page."""
    rows: list[list[str]] = []
    if report["kind"] == "beir":
        header = ["mode", "stage", *METRICS]
        for run in report["runs"]:
            for stage in ("recall", "reranked"):
                if run[stage] is not None:
                    rows.append([run["mode"], _stage_name(stage, run), *(_f(run[stage][m]) for m in METRICS)])
        return header, rows
    if report["kind"] == "dialogues":
        return _dialogue_rows(report)
    header = [
        "mode",
        "questions",
        "stage",
        "hit@1 [95% interval]",
        "hit@5 [95% interval]",
        "answered with a gold page",
        "gold page cited",
        "unanswerable refused",
    ]
    for run in report["runs"]:
        stages = ("recall",) if run["reranker"] == NO_RERANKER else ("recall", "reranked")
        for group, figures in run["groups"].items():
            for stage in stages:
                # What the answer shows follows the last stage: on the other row it would repeat.
                final = stage == stages[-1]
                refused = figures["refused_unanswerable"]
                rows.append(
                    [
                        run["mode"],
                        f"{group} ({figures['answerable']}+{figures['unanswerable']})",
                        _stage_name(stage, run),
                        _with_interval(figures[stage], "hit@1"),
                        _with_interval(figures[stage], "hit@5"),
                        _with_interval(figures, "answered_gold") if final else "",
                        _with_interval(figures, "cited_gold") if final else "",
                        "-" if refused is None else f"{refused:.0%}",
                    ]
                )
    return header, rows


def _with_interval(figures: dict[str, Any], key: str) -> str:
    low, high = figures[f"{key}_ci95"]
    return f"{_f(figures[key])} [{low:.2f}, {high:.2f}]"


def _dialogue_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["mode", "rewrite", "dialogues", "last turn: gold page cited, with history", "alone"]
    rows = [
        [
            run["mode"],
            run["rewrite"],
            f"{group} ({figures['dialogues']})",
            _share(figures["with_history"]),
            _share(figures["alone"]),
        ]
        for run in report["runs"]
        for group, figures in run["groups"].items()
    ]
    return header, rows


def _subject_count(report: dict[str, Any]) -> str:
    if report["kind"] == "dialogues":
        return f"{report['dialogues']} dialogues"
    return f"{report.get('queries', report.get('questions'))} queries"


def _share(figure: dict[str, Any]) -> str:
    low, high = figure["ci95"]
    return f"{figure['hit']:.0%} [{low:.0%}, {high:.0%}]"


def _stage_name(stage: str, run: dict[str, Any]) -> str:
    return "recall" if stage == "recall" else f"reranked ({run['reranker']})"


def _latency_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    seen = {stage for run in report["runs"] for stage in run["latency_ms"]}
    stages = [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))
    header = ["mode", *(f"{s} p50/p95 ms" for s in stages)]
    rows = [
        [
            run["mode"],
            *(
                f"{run['latency_ms'][s]['p50']:.1f} / {run['latency_ms'][s]['p95']:.1f}"
                if s in run["latency_ms"]
                else "-"
                for s in stages
            ),
        ]
        for run in report["runs"]
    ]
    return header, rows


def tables(report: dict[str, Any]) -> list[Table]:
    out = []
    for title, (header, rows) in (("Retrieval quality", _rows(report)), ("Latency", _latency_rows(report))):
        table = Table(title=title)
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(report: dict[str, Any], folder: Path, *, command: str) -> Path:
    """report.md, report.json and recall-curve.png in `folder`; returns the markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    plot = _plot(report, folder / "recall-curve.png")
    subject = report.get("dataset") or report.get("file")
    lines = [
        f"# Retrieval evaluation: {subject}",
        "",
        f"Command: `{command}`",
        "",
        f"Collection `{report['collection']}`, embedder `{report['embedding_model']}`, {_subject_count(report)}.",
        "",
        "## Quality",
        "",
        _markdown_table(*_rows(report)),
        "",
        "## Latency per stage",
        "",
        _markdown_table(*_latency_rows(report)),
        "",
    ]
    if plot is not None:
        lines += ["## Recall at depth k, before and after reranking", "", f"![recall curve]({plot.name})", ""]
    if report.get("answers"):
        lines += [f"Answers with their citations: `{report['answers']}`", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _curves(report: dict[str, Any]) -> list[tuple[str, list[float], bool]]:
    """(label, recall@k values, dashed?) per mode and stage."""
    out = []
    for run in report["runs"]:
        if report["kind"] == "beir":
            recall = [run["recall"][f"curve@{k}"] for k in CURVE_DEPTHS]
            reranked = None if run["reranked"] is None else [run["reranked"][f"curve@{k}"] for k in CURVE_DEPTHS]
        else:
            curve = run["groups"]["all"]["curve"]
            recall, reranked = curve["recall"], None if run["reranker"] == NO_RERANKER else curve["reranked"]
        out.append((f"{run['mode']} recall", recall, False))
        if reranked is not None:
            out.append((f"{run['mode']} reranked", reranked, True))
    return out


def _plot(report: dict[str, Any], path: Path) -> Path | None:
    if report["kind"] == "dialogues":
        return None  # one figure per group, no curve
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for label, values, dashed in _curves(report):
        ax.plot(CURVE_DEPTHS, values, marker="o", markersize=3, linestyle="--" if dashed else "-", label=label)
    ax.set_xscale("log")
    ax.set_xticks(CURVE_DEPTHS, [str(k) for k in CURVE_DEPTHS])
    ax.set_xlabel("k (passages read)")
    ax.set_ylabel("recall@k" if report["kind"] == "beir" else "gold page in top k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(str(report.get("dataset") or report.get("file")), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
