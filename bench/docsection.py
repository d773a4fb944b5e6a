"""One way for a benchmark to put its figures in docs/benchmarks.md: a section between `<!-- bench:KEY -->` markers,
replaced in place on a rerun, appended the first time."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(key: str, title: str, body: str, doc: Path = DOC) -> None:
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = f"{start}\n## {title}\n\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)
