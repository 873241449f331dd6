"""Write a benchmark's results into its own section of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by the script named in it, from one run on one machine; ratios are
between methods measured in the same run. Re-run a script to refresh its section.
"""


def write_section(name: str, title: str, body: str, command: str | None = None) -> None:
    """Replace (or append) the section delimited by ``<!-- name -->`` markers; ``command``
    (default ``python benchmarks/NAME.py``) is what produced it."""
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    stamp = f"{datetime.date.today()}, {platform.machine()}, Python {platform.python_version()}"
    command = command or f"python benchmarks/{name}.py"
    section = f"{start}\n## {title}\n\n`{command}` — {stamp}\n\n{body}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
