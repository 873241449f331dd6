"""ccstore demo: the README's first command runs, checks every value it reads, and shows that
slices of an uncompressed array read pages while compressed ones read chunks."""

from __future__ import annotations

import re

from ccstore.cli import main


def _mib_read(output: str, key: str, label: str) -> float:
    section = output.split(f"wrote {key}:")[1]
    match = re.search(rf"read {re.escape(label)}: .*?, ([\d.,]+) MiB read of", section)
    assert match, output
    return float(match.group(1).replace(",", ""))


def test_demo_runs_and_uncompressed_slices_read_pages(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "s"), "--size-mb", "20"]) == 0
    output = capsys.readouterr().out
    assert output.count("(values verified)") == 9  # 4 slices + whole read, 4 raw slices
    # 1,000 x 5,000 float32 in chunks of 250 x 2,500: the row is a 64 KiB page of each of 2
    assert _mib_read(output, "demo/raw", "row 999") == 0.1
    assert _mib_read(output, "demo/signal", "row 999") > 3
    assert _mib_read(output, "demo/raw", "100 random points") < _mib_read(
        output, "demo/signal", "100 random points"
    )
