from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from ingest.loaders import FORMATS, SUFFIXES, LoadOptions, format_of, load_document
from ingest.uploads import safe_file_name
from rag.errors import LoadError
from rag.types import LoadedDocument


def load(path: Path, **kwargs: Any) -> LoadedDocument:
    if not kwargs:
        return load_cached(path)
    return load_document(path, path.read_bytes(), LoadOptions(**kwargs))


@functools.cache
def load_cached(path: Path) -> LoadedDocument:
    return load_document(path, path.read_bytes())


class TestPdf:
    def test_outline_headings_and_pages_on_nist(self, corpus: Path) -> None:
        doc = load(corpus / "en" / "SP800-40r3.pdf")
        assert doc.file_type == "pdf" and doc.pages == 26
        pages = [s.page for s in doc.sections]
        assert pages == sorted(pages) and min(pages) >= 1 and max(pages) <= 26
        audience = [s for s in doc.sections if s.heading_path[-1:] == ("1.2 Audience",)]
        assert len(audience) == 1
        assert audience[0].heading_path == ("1. Introduction", "1.2 Audience")
        assert audience[0].page == 9  # 1-based, as a reader counts
        assert "security managers, engineers, administrators" in audience[0].text

    def test_numbered_headings_when_there_is_no_outline(self, corpus: Path) -> None:
        doc = load(corpus / "en" / "SP800-61rev2.pdf")
        on_page_42 = [s for s in doc.sections if s.page == 42]
        assert any(s.heading_path[-1] == "3.2.7 Incident Notification" for s in on_page_42)
        assert on_page_42[0].heading_path[:2] == ("3. Handling an Incident", "3.2 Detection and Analysis")

    def test_running_headers_and_page_numbers_are_dropped(self, corpus: Path) -> None:
        doc = load(corpus / "en" / "SP800-61rev2.pdf")
        page_42 = "\n".join(s.text for s in doc.sections if s.page == 42)
        assert "COMPUTER SECURITY INCIDENT HANDLING GUIDE" not in page_42

    def test_chinese_lines_are_joined_without_spaces(self, corpus: Path) -> None:
        path = corpus / "zh" / "PRC_Data_Security_Law.pdf"
        from pypdf import PdfReader

        raw = PdfReader(path).pages[0].extract_text()
        assert "组织的合\n法权益" in raw  # pypdf breaks this word across lines
        doc = load(path)
        text = "\n".join(s.text for s in doc.sections)
        assert "保护个人、组织的合法权益" in text
        # Every line break pypdf put between two Chinese characters is gone, with no space added.
        lines = [line.strip() for line in raw.split("\n")]
        cjk = re.compile(r"[\u4e00-\u9fff，、；。]")
        joins = [
            a[-3:] + b[:3]
            for a, b in itertools.pairwise(lines)
            if a and b and cjk.match(a[-1]) and cjk.match(b[0]) and not b.startswith("第")
        ]
        assert len(joins) >= 5
        assert [j for j in joins if j not in text] == []
        # Articles start on their own line; chapters are headings.
        assert "\n第二条 在中华人民共和国境内" in text
        chapters = {s.heading_path[0] for s in doc.sections if s.heading_path}
        assert "第二章 数据安全与发展" in chapters

    @pytest.mark.parametrize(
        ("name", "reason"),
        [
            ("DERIVED_SP800-61rev2_truncated_60pct.pdf", "corrupt or truncated PDF"),
            ("empty.pdf", "empty file"),
            ("not-a-pdf.pdf", "not a PDF (the content is text)"),
            ("pdfminer_aes-256.pdf", "a password is needed"),
            ("pypdfsamples_unreadablemetadata.pdf", "corrupt or truncated PDF"),
        ],
    )
    def test_broken_files_get_one_line_reasons(self, corpus: Path, name: str, reason: str) -> None:
        with pytest.raises(LoadError) as caught:
            load(corpus / "nasty" / name)
        assert reason in caught.value.reason
        assert "\n" not in caught.value.reason and "Traceback" not in caught.value.reason

    def test_a_scan_without_ocr_fails_saying_how_to_read_it(self, corpus: Path) -> None:
        with pytest.raises(LoadError, match=r"no text layer \(a scanned or image-only PDF\): to read it by OCR"):
            load(corpus / "nasty" / "image.pdf", ocr=False)

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("pypdf_r6-empty-password.pdf", ""),
            ("pypdf_r6-user-password.pdf", "password: asdfzxcv"),
            ("xref_command_missing.pdf", "Reduced test-case"),
            ("zen_of_python_corrupted.pdf", "Beautiful is better than ugly."),
            ("Seige_of_Vicksburg_Sample_OCR.pdf", "VICKSBURG"),
            ("pypdfsamples_multicolumn.pdf", ""),
        ],
    )
    def test_damaged_but_readable_files_load(self, corpus: Path, name: str, expected: str) -> None:
        doc = load(corpus / "nasty" / name)
        assert expected in "\n".join(s.text for s in doc.sections)
        assert all(s.page is not None for s in doc.sections)

    def test_password_opens_an_encrypted_pdf(self, corpus: Path) -> None:
        doc = load(corpus / "nasty" / "pdfminer_aes-256.pdf", pdf_password="foo")
        assert doc.sections
        with pytest.raises(LoadError, match="does not open it"):
            load(corpus / "nasty" / "pdfminer_aes-256.pdf", pdf_password="wrong")


class TestOtherFormats:
    def test_markdown_heading_paths(self, tmp_path: Path) -> None:
        path = tmp_path / "runbook.md"
        path.write_text(
            "# VPN runbook\n\nIntro text.\n\n## Reset a token\n\nStep one.\n\n```\n# not a heading\n```\n\n"
            "### Mobile\n\nUse the app.\n\nAppendix\n========\n\nLast words.\n"
        )
        doc = load(path)
        paths = [s.heading_path for s in doc.sections]
        assert paths == [
            ("VPN runbook",),
            ("VPN runbook", "Reset a token"),
            ("VPN runbook", "Reset a token", "Mobile"),
            ("Appendix",),
        ]
        assert "# not a heading" in doc.sections[1].text
        assert doc.title == "VPN runbook"

    def test_html_text_in_order_without_scripts(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.html"
        path.write_text(
            "<html><head><title>Policy</title><style>p{}</style></head><body><nav>menu</nav>"
            "<h1>Travel policy</h1><p>Book <b>early</b>.</p><script>alert(1)</script>"
            "<h2>Hotels</h2><ul><li>Max 150 EUR</li><li>Breakfast included</li></ul></body></html>"
        )
        doc = load(path)
        assert doc.title == "Policy"
        assert [s.heading_path for s in doc.sections] == [("Travel policy",), ("Travel policy", "Hotels")]
        joined = "\n".join(s.text for s in doc.sections)
        assert "Book early." in joined and "Max 150 EUR\n\nBreakfast included" in joined
        assert "alert" not in joined and "menu" not in joined

    def test_docx_headings_paragraphs_and_tables(self, tmp_path: Path) -> None:
        import docx

        document = docx.Document()
        document.add_heading("Sales FAQ", level=1)
        document.add_paragraph("Prices are per seat.")
        document.add_heading("Discounts", level=2)
        table = document.add_table(rows=2, cols=2)
        table.cell(0, 0).text, table.cell(0, 1).text = "Seats", "Discount"
        table.cell(1, 0).text, table.cell(1, 1).text = "100+", "15%"
        path = tmp_path / "faq.docx"
        document.save(str(path))
        doc = load(path)
        assert [s.heading_path for s in doc.sections] == [("Sales FAQ",), ("Sales FAQ", "Discounts")]
        assert doc.sections[1].text == "Discounts\n\n| Seats | Discount |\n| --- | --- |\n| 100+ | 15% |"

    def test_text_utf8_and_gb18030(self, tmp_path: Path) -> None:
        utf8 = tmp_path / "a.txt"
        utf8.write_text("密码至少十二位。", encoding="utf-8")
        gbk = tmp_path / "b.txt"
        gbk.write_bytes("密码至少十二位。".encode("gb18030"))
        assert load(utf8).sections[0].text == load(gbk).sections[0].text == "密码至少十二位。"

    @pytest.mark.parametrize(
        ("name", "content", "reason"),
        [
            ("junk.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "binary content"),
            ("bad.txt", b"\xff\xfeA\x00B", "invalid UTF-16"),
            ("latin.txt", b"caf\xe9 \xff\xfe\x80\x80\x80", "not valid UTF-8"),
            ("empty.md", b"", "empty file"),
            ("blank.txt", b"   \n\n  ", "no text"),
            ("fake.docx", b"PK not really", "not a DOCX"),
            ("data.xlsx", b"whatever", "unsupported file type"),
        ],
    )
    def test_bad_files_get_reasons(self, tmp_path: Path, name: str, content: bytes, reason: str) -> None:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(LoadError, match=reason):
            load(path)


class TestFormatTable:
    """One table of formats, read by the CLI's folder walk, the upload route and the parse worker."""

    def test_every_suffix_maps_to_one_format_that_loads_it(self, tmp_path: Path) -> None:
        assert tuple(sorted(s for fmt in FORMATS for s in fmt.suffixes)) == SUFFIXES
        for fmt in FORMATS:
            for suffix in fmt.suffixes:
                assert format_of(f"x{suffix.upper()}") is fmt
        assert format_of("x.exe") is None and format_of("README") is None

    def test_content_is_checked_against_the_named_format(self) -> None:
        pdf, docx, text = (format_of(name) for name in ("a.pdf", "a.docx", "a.text"))
        assert pdf is not None and docx is not None and text is not None
        assert pdf.content_problem(".pdf", b"\n%PDF-1.7 ...") is None
        assert pdf.content_problem(".pdf", b"hello") == "named .pdf but is not a PDF"
        assert docx.content_problem(".docx", b"PK\x03\x04...") is None
        assert docx.content_problem(".docx", b"%PDF-") == "named .docx but is not a DOCX (zip) file"
        assert text.content_problem(".text", "纯文本".encode()) is None
        assert text.content_problem(".text", b"MZ\x00\x00") == "named .text but holds binary data"

    def test_the_formats_that_can_expand_are_parsed_behind_the_fence(self) -> None:
        assert {fmt.file_type for fmt in FORMATS if fmt.compressed} == {"pdf", "docx"}

    def test_uploads_accept_exactly_the_formats_the_cli_ingests(self) -> None:
        for suffix in SUFFIXES:
            assert safe_file_name(f"../../notes{suffix}") == f"notes{suffix}"
        with pytest.raises(ValueError, match="not accepted"):
            safe_file_name("tool.exe")
