"""Write the binary sample documents in data/ (a DOCX and a two-page PDF), deterministically.

    .venv/bin/python scripts/make_sample_data.py

The outputs are committed; this script is how they were made and how to remake them.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"

TRAVEL_PAGES = [
    [
        "Acme travel and expenses policy",
        "",
        "1 Booking travel",
        "All business trips are booked through the travel portal at least 14 days ahead.",
        "Economy class is the rule for flights under six hours; business class needs",
        "approval from a vice president.",
        "",
        "2 Hotels",
        "The nightly limit is 150 EUR in most cities and 220 EUR in London, Paris,",
        "New York, Tokyo and Shanghai. Breakfast may be expensed when not included.",
    ],
    [
        "3 Meals and per diem",
        "Meals are reimbursed up to 60 EUR per day with receipts. Alcohol is not",
        "reimbursed. Client dinners need the name of every guest on the claim.",
        "",
        "4 Submitting expenses",
        "Claims are submitted within 30 days of the trip in the expenses tool, with a",
        "photo of every receipt over 25 EUR. Late claims need a manager's approval.",
    ],
]


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    """A minimal valid PDF: Helvetica text, one content stream per page, a correct xref table."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 {font_id} 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        text = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            text.append(f"({escaped}) Tj T*")
        text.append("ET")
        stream = zlib.compress("\n".join(text).encode("latin-1"))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.created = datetime(2026, 1, 1, tzinfo=UTC)
    document.add_heading("New starter onboarding guide", level=1)
    document.add_paragraph("Welcome to Acme. This guide covers your first week.")
    document.add_heading("Your laptop", level=2)
    document.add_paragraph(
        "IT hands out laptops on your first morning at the service desk on floor 2. Bring photo ID. "
        "The laptop is encrypted; choose a 12-character password when you first sign in."
    )
    document.add_heading("Accounts and access", level=2)
    document.add_paragraph(
        "Your manager requests access to team systems through the access portal. Approvals take up to "
        "two working days. Multi-factor authentication is set up on day one."
    )
    table = document.add_table(rows=4, cols=2)
    for row, (what, when) in enumerate(
        [("What", "When"), ("Laptop", "Day 1"), ("E-mail and chat", "Day 1"), ("Team systems", "Day 2-3")]
    ):
        table.cell(row, 0).text, table.cell(row, 1).text = what, when
    document.add_heading("Security training", level=2)
    document.add_paragraph("Complete the 45-minute security awareness course within your first 14 days.")
    document.save(str(path))


if __name__ == "__main__":
    write_pdf(DATA / "travel-policy.pdf", TRAVEL_PAGES)
    write_docx(DATA / "onboarding-guide.docx")
    print("wrote", DATA / "travel-policy.pdf", DATA / "onboarding-guide.docx")
