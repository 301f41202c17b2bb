"""Deduplicate any JSONL file with the run's dedup layers: `synthboot dedup FILE.jsonl --field NAME`.

Rows are taken in file order; the first of each group of duplicates is kept. The kept rows are
written unchanged; `--pairs` writes one line per removed row with the row it duplicates, the layer
and the similarity.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthboot.errors import SynthbootError
from synthboot.jsonl import read_jsonl
from synthboot.spec import DedupSpec
from synthboot.stages.dedup import LAYER_NAMES, ExactLayer, Layer, MinHashLayer, SemanticLayer, WordOverlapLayer, dedup_records

DEFAULT_METHODS = ("exact", "minhash", "semantic")


@dataclass
class DedupFileResult:
    rows: int
    kept: int
    removed: Counter = field(default_factory=Counter)  # layer -> rows removed
    empty: int = 0  # rows whose compared text is empty (kept: nothing to compare)
    missing: int = 0  # rows that have none of the compared fields (kept, counted: maybe a wrong --field)
    seconds: float = 0.0


def make_file_layers(methods: list[str], fields: list[str], threshold: float | None = None,
                     embedder: str | None = None) -> list[Layer]:
    """Layers for `methods` in the given order, at the spec's default settings unless `threshold` is given."""
    defaults = DedupSpec()
    layers: list[Layer] = []
    for method in methods:
        if method == "exact":
            layers.append(ExactLayer())
        elif method == "word_overlap":
            layers.append(WordOverlapLayer(threshold or defaults.word_overlap.threshold))
        elif method == "minhash":
            m = defaults.minhash
            layers.append(MinHashLayer(threshold or m.threshold, m.num_perm, m.shingle, m.ngram))
        elif method == "semantic":
            s = defaults.semantic
            layers.append(SemanticLayer(threshold or s.threshold, embedder or s.embedder))
        else:
            raise SynthbootError(f"unknown dedup method {method!r}; choose from {', '.join(LAYER_NAMES)}")
    if not layers:
        raise SynthbootError("no dedup method given")
    return layers


def dedup_file(path: str | Path, fields: list[str], out: str | Path, *, methods: list[str] | None = None,
               threshold: float | None = None, pairs: str | Path | None = None,
               embedder: str | None = None) -> DedupFileResult:
    """Write the rows of `path` that are not duplicates (compared on `fields`) to `out`."""
    started = time.perf_counter()
    path = Path(path)
    for target, option in ((out, "--out"), (pairs, "--pairs")):
        if target is not None and _same_file(path, Path(target)):
            raise SynthbootError(f"{option} {target} is the input file: it would be overwritten; write elsewhere")
    rows = read_jsonl(path)
    if rows and not any(f in row for row in rows for f in fields):
        raise SynthbootError(f"no row of {path} has the field(s) {', '.join(fields)}")
    layers = make_file_layers(list(methods or DEFAULT_METHODS), fields, threshold, embedder)
    records = [(i, {f: _text(row.get(f)) for f in fields}) for i, row in enumerate(rows)]
    outcome = dedup_records(records, layers, fields)
    result = DedupFileResult(rows=len(rows), kept=len(outcome.kept),
                             empty=sum(1 for _, r in records if not "".join(r.values()).strip()),
                             missing=sum(1 for row in rows if not any(f in row for f in fields)))
    for layer, _, _ in outcome.removed.values():
        result.removed[layer] += 1
    _write_jsonl(Path(out), (rows[i] for i in outcome.kept))
    if pairs is not None:
        _write_jsonl(Path(pairs), ({"line": i + 1, "duplicate_of_line": j + 1, "layer": layer, "similarity": score,
                                    "text": records[i][1], "duplicate_of_text": records[j][1]}
                                   for i, (layer, j, score) in sorted(outcome.removed.items())))
    result.seconds = time.perf_counter() - started
    return result


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.exists() and a.samefile(b))
    except OSError:
        return False


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
