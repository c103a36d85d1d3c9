from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from ingest.chunking import Chunker, document_text, heading_context
from ingest.loaders import load_document
from rag.tables import plain_tables
from rag.types import LoadedDocument, Section

CJK_STOPS = "。！？；"


def assert_holds(chunk_text: str, span_text: str) -> None:
    """A chunk's text is its span of the document, or, for the second and later pieces of a long
    table, the table's header row and rule followed by its span (rows from there)."""
    if chunk_text != span_text:
        header, rule, rest = chunk_text.split("\n", 2)
        assert header.startswith("| ") and set(rule) <= set("|- "), chunk_text[:200]
        assert rest == span_text, (chunk_text[:200], span_text[:200])


def chunk_pdf(path: Path, embedder, *, max_tokens: int = 200, overlap: int = 32):
    document = load_document(path, path.read_bytes())
    chunker = Chunker(embedder.count_tokens, max_tokens=max_tokens, overlap_tokens=overlap)
    return document, chunker.chunk(document, doc_id="d", version="v1", ingested_at="2026-01-01T00:00:00+00:00")


class TestChunkerOnRealPdfs:
    @pytest.fixture(scope="class")
    def nist(self, corpus: Path, minilm):
        return chunk_pdf(corpus / "en" / "SP800-61rev2.pdf", minilm)

    @pytest.fixture(scope="class")
    def prc(self, corpus: Path, minilm):
        return chunk_pdf(corpus / "zh" / "PRC_Personal_Information_Protection_Law.pdf", minilm)

    @pytest.mark.parametrize("which", ["nist", "prc"])
    def test_spans_pages_and_token_budget(self, which: str, request: pytest.FixtureRequest, minilm) -> None:
        document, chunks = request.getfixturevalue(which)
        text, spans = document_text(document)
        assert len(chunks) > 20
        for index, chunk in enumerate(chunks):
            assert chunk.chunk_index == index and chunk.id == f"d:v1:{index:05d}"
            assert_holds(chunk.text, text[chunk.char_start : chunk.char_end])
            # What the model reads (heading in front) fits the budget the model has.
            assert minilm.count_tokens(heading_context(chunk.heading_path, plain_tables(chunk.text))) <= 200
            assert chunk.pages, "every PDF chunk has a page"
            for page in chunk.pages:
                page_text = "\n".join(s.section.text for s in spans if s.section.page == page)
                assert page_text, f"page {page} holds no text"
            # The chunk's text really lies on its pages.
            on_pages = [s for s in spans if s.section.page in chunk.pages]
            assert on_pages[0].start <= chunk.char_start and chunk.char_end <= on_pages[-1].end
        assert chunks[-1].pages[-1] <= document.pages

    def test_nist_headings_follow_the_document(self, nist) -> None:
        _, chunks = nist
        notification = [c for c in chunks if c.heading_path[-1:] == ("3.2.7 Incident Notification",)]
        assert notification and notification[0].text.startswith("3.2.7 Incident Notification")
        assert {p for c in notification for p in c.pages} <= {42, 43}
        # A chunk never mixes two headings' bodies unless the first is tiny: starts are heading-aligned.
        starts = [c for c in chunks if re.match(r"^\d\.\d(\.\d)? [A-Z]", c.text)]
        assert len(starts) >= 20

    def test_chinese_chunks_break_at_sentence_ends(self, prc) -> None:
        _, chunks = prc
        inner = chunks[:-1]
        clean_ends = [c for c in inner if c.text[-1] in CJK_STOPS or c.text.endswith(("则", "章"))]
        assert len(clean_ends) / len(inner) >= 0.9, [c.text[-20:] for c in inner if c not in clean_ends][:5]

    def test_neighbours_overlap(self, nist, minilm) -> None:
        _, chunks = nist
        overlapping = [
            (a, b)
            for a, b in itertools.pairwise(chunks)
            if a.heading_path == b.heading_path and b.char_start < a.char_end
        ]
        assert len(overlapping) >= 10
        shared = [minilm.count_tokens(a.text[len(a.text) - (a.char_end - b.char_start) :]) for a, b in overlapping]
        # The splitter counts overlap per piece it merges; the joined text may count a few more.
        assert sum(n <= 32 + 8 for n in shared) / len(shared) >= 0.9
        assert all(b.char_end > a.char_end for a, b in overlapping)  # each chunk moves forward


class TestTables:
    def count(self, text: str) -> int:
        return len(text.split())

    def test_a_pdf_table_is_one_chunk_with_its_caption(self, corpus: Path, minilm) -> None:
        _, chunks = chunk_pdf(corpus / "en" / "SP800-40r3.pdf", minilm)
        [holding] = [c for c in chunks if "| Supports remote hosts? | Yes | No | No |" in c.text]
        assert holding.pages == (17,)
        assert (
            "Table 4-1: Comparison of Techniques\n\n| Characteristic | Agent-Based | Agentless Scanning |"
            in holding.text
        )
        assert holding.text.count("\n| ") == 7 + 1  # header, rule and seven rows, all here

    def test_a_long_pdf_table_is_split_between_rows_under_its_header(self, corpus: Path, minilm) -> None:
        # SP800-61rev2 p.51, Table 3-5 (the incident handling checklist): more than 200 tokens.
        document, chunks = chunk_pdf(corpus / "en" / "SP800-61rev2.pdf", minilm)
        text, _ = document_text(document)
        pieces = [c for c in chunks if c.text.startswith("|  | Action |\n| --- | --- |\n| ")]
        assert len(pieces) >= 2 and all(c.pages == (51,) for c in pieces), [c.text[:80] for c in pieces]
        assert any(c.text != text[c.char_start : c.char_end] for c in pieces)  # a later piece: the header again
        rows = "\n".join(c.text for c in pieces)
        assert "| 4. | Acquire, preserve, secure, and document evidence |" in rows
        assert "| 9. | Hold a lessons learned meeting" in rows

    def test_a_long_table_is_split_between_rows_under_its_header(self) -> None:
        rows = [f"| host-{i:02d} | patched on day {i} |" for i in range(40)]
        table = "\n".join(["| Host | Status |", "| --- | --- |", *rows])
        doc = LoadedDocument(path="t.md", file_type="markdown", sections=(Section("Patch status:\n\n" + table),))
        chunks = Chunker(self.count, max_tokens=60, overlap_tokens=10).chunk(doc, doc_id="d", version="v")
        text, _ = document_text(doc)
        pieces = [c for c in chunks if "| host-" in c.text]
        assert len(pieces) > 3 and all(self.count(plain_tables(c.text)) <= 60 for c in chunks)
        for chunk in pieces:
            assert chunk.text.startswith("| Host | Status |\n| --- | --- |\n| host-")
            assert_holds(chunk.text, text[chunk.char_start : chunk.char_end])
        # Every row once, in order, none cut.
        assert [line for c in pieces for line in c.text.split("\n")[2:]] == rows

    def test_a_table_row_longer_than_the_budget_is_cut_as_text(self) -> None:
        long_row = "| notes | " + "word " * 80 + "|"
        table = "\n".join(["| Field | Value |", "| --- | --- |", "| owner | ops |", long_row, "| tier | 1 |"])
        doc = LoadedDocument(path="t.md", file_type="markdown", sections=(Section(table),))
        chunks = Chunker(self.count, max_tokens=40, overlap_tokens=5).chunk(doc, doc_id="d", version="v")
        assert all(self.count(plain_tables(c.text)) <= 40 for c in chunks)
        joined = " ".join(c.text for c in chunks)
        assert "| owner | ops |" in joined and "| tier | 1 |" in joined and joined.count("word") >= 80


class TestChunkerUnits:
    def count(self, text: str) -> int:
        return len(text.split())

    def test_tiny_heading_sections_merge_into_the_next(self) -> None:
        doc = LoadedDocument(
            path="x.md",
            file_type="markdown",
            sections=(
                Section("Title", heading_path=("Title",)),
                Section("Intro " + "word " * 30, heading_path=("Title", "Intro")),
                Section("Next " + "word " * 30, heading_path=("Title", "Next")),
            ),
        )
        chunks = Chunker(self.count, max_tokens=100, overlap_tokens=0).chunk(doc, doc_id="d", version="v")
        assert [c.heading_path for c in chunks] == [("Title", "Intro"), ("Title", "Next")]
        assert chunks[0].text.startswith("Title\n\nIntro")

    def test_overlap_must_be_below_max(self) -> None:
        with pytest.raises(ValueError):
            Chunker(self.count, max_tokens=10, overlap_tokens=10)

    def test_heading_context_is_added_once(self) -> None:
        assert heading_context(("A", "B"), "B starts here") == "B starts here"
        assert heading_context(("A", "B"), "body") == "A > B\nbody"
        assert heading_context((), "body") == "body"
