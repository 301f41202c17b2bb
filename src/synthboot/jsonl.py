"""Reading and writing JSONL files of objects (seeds, real examples, exports, any data to dedup), one place for its errors."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthboot.errors import SynthbootError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file (gzip when it ends in .gz); blank lines are skipped."""
    return [row for _, row in numbered_rows(path)]


def numbered_rows(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each row, so later checks can name the line.

    Raises `SynthbootError` naming the file and, for a bad row, its line.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise SynthbootError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SynthbootError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SynthbootError(f"{path} line {n} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise SynthbootError(f"{path} line {n} is not a JSON object")
        rows.append((n, row))
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write `rows` one JSON object a line (gzip when the name ends in .gz), atomically via a .tmp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    opener = gzip.open if path.suffix == ".gz" else open  # the name says gzip: write gzip
    with opener(tmp, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
