"""Write a benchmark's figures into docs/benchmarks.md between per-section markers."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nFigures written by the scripts under `bench/`; each section says how it was measured.\n"
)


def write_section(name: str, body: str) -> None:
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = (
        f"\n_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {platform.python_version()}, {_cpus()} cores._\n"
    )
    block = f"<!-- bench:{name} -->\n{body.rstrip()}\n{stamp}<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = (
        pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
