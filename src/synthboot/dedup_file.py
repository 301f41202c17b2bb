"""Deduplicate any JSONL file with the run's dedup layers: `synthboot dedup FILE.jsonl --field NAME`.

Rows are taken in file order; the first of each group of duplicates is kept. The kept rows are
written unchanged (gzip when the name ends in .gz); `--pairs` writes one line per removed row with
the row it duplicates, the layer and the similarity.

With several fields, `match="joined"` compares the fields joined into one text; `match="each"`
removes a row only when every field on its own matches the same earlier row (two different
instructions over one long input are then not duplicates).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthboot.errors import SynthbootError
from synthboot.jsonl import read_jsonl
from synthboot.spec import DedupSpec
from synthboot.stages.dedup import (LAYER_NAMES, DedupOutcome, ExactLayer, Layer, MinHashLayer, SemanticLayer,
                                    WordOverlapLayer, dedup_records)

DEFAULT_METHODS = ("exact", "minhash", "semantic")


@dataclass
class DedupFileResult:
    rows: int
    kept: int
    removed: Counter = field(default_factory=Counter)  # layer -> rows removed
    empty: int = 0  # rows whose compared text is empty (kept: nothing to compare)
    missing: int = 0  # rows that have none of the compared fields (kept, counted: maybe a wrong --field)
    seconds: float = 0.0


def parse_methods(text: str | list[str] | None) -> list[str]:
    """'exact, minhash' or ['exact', 'minhash'] -> ['exact', 'minhash'] (spaces and empty items ignored)."""
    if text is None:
        return list(DEFAULT_METHODS)
    parts = text.split(",") if isinstance(text, str) else [p for item in text for p in item.split(",")]
    return [p.strip() for p in parts if p.strip()]


def make_file_layers(methods: list[str], fields: list[str], threshold: float | None = None,
                     embedder: str | None = None, thresholds: dict[str, float | None] | None = None) -> list[Layer]:
    """Layers for `methods` in the given order, at the spec's default settings.

    `thresholds` sets one layer's threshold (Jaccard for minhash, cosine for semantic, word overlap);
    `threshold` sets every layer that `thresholds` does not name. 0 is a threshold, not "unset".
    """
    defaults = DedupSpec()
    chosen = {k: v for k, v in (thresholds or {}).items() if v is not None}

    def pick(name: str, default: float) -> float:
        return chosen.get(name, threshold if threshold is not None else default)

    if embedder is not None and "semantic" not in methods:
        raise SynthbootError("--embedder is only used by the semantic layer; add semantic to --method")
    layers: list[Layer] = []
    for method in methods:
        if method == "exact":
            layers.append(ExactLayer())
        elif method == "word_overlap":
            layers.append(WordOverlapLayer(pick("word_overlap", defaults.word_overlap.threshold)))
        elif method == "minhash":
            m = defaults.minhash
            layers.append(MinHashLayer(pick("minhash", m.threshold), m.num_perm, m.shingle, m.ngram))
        elif method == "semantic":
            s = defaults.semantic
            layers.append(SemanticLayer(pick("semantic", s.threshold), embedder or s.embedder))
        else:
            raise SynthbootError(f"unknown dedup method {method!r}; choose from {', '.join(LAYER_NAMES)}")
    if not layers:
        raise SynthbootError("no dedup method given")
    return layers


def dedup_file(path: str | Path, fields: list[str], out: str | Path, *, methods: list[str] | str | None = None,
               threshold: float | None = None, pairs: str | Path | None = None,
               embedder: str | None = None, thresholds: dict[str, float | None] | None = None,
               match: str = "joined") -> DedupFileResult:
    """Write the rows of `path` that are not duplicates (compared on `fields`) to `out`."""
    if match not in ("joined", "each"):
        raise SynthbootError(f"--match-fields must be joined or each, not {match!r}")
    started = time.perf_counter()
    path = Path(path)
    for target, option in ((out, "--out"), (pairs, "--pairs")):
        if target is not None and _same_file(path, Path(target)):
            raise SynthbootError(f"{option} {target} is the input file: it would be overwritten; write elsewhere")
    rows = read_jsonl(path)
    if rows and not any(f in row for row in rows for f in fields):
        raise SynthbootError(f"no row of {path} has the field(s) {', '.join(fields)}")
    layers = make_file_layers(parse_methods(methods), fields, threshold, embedder, thresholds)
    records = [(i, {f: _text(row.get(f)) for f in fields}) for i, row in enumerate(rows)]
    outcome = dedup_each_field(records, layers, fields) if match == "each" and len(fields) > 1 \
        else dedup_records(records, layers, fields)
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


def dedup_each_field(items: list[tuple[int, dict]], layers: list[Layer], fields: list[str]) -> DedupOutcome:
    """Greedy layered dedup where a row is a duplicate of an earlier kept row only if every field matches it.

    The reported similarity is the lowest of the fields' similarities.
    """
    keys = [k for k, _ in items]
    per_layer = []
    for layer in layers:
        by_field = [layer.candidates([str(f.get(name, "")) for _, f in items]) for name in fields]
        joined = []
        for pos in range(len(items)):
            scores = [dict(hits[pos]) for hits in by_field]
            common = set(scores[0]).intersection(*scores[1:])
            joined.append(sorted(((j, min(s[j] for s in scores)) for j in common), key=lambda h: -h[1]))
        per_layer.append(joined)
    kept_mask = [True] * len(items)
    kept, removed = [], {}
    for pos in range(len(items)):
        for layer, joined in zip(layers, per_layer):
            hit = next(((j, s) for j, s in joined[pos] if kept_mask[j]), None)
            if hit is not None:
                removed[keys[pos]] = (layer.name, keys[hit[0]], round(float(hit[1]), 4))
                kept_mask[pos] = False
                break
        else:
            kept.append(keys[pos])
    return DedupOutcome(kept, removed)


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
    opener = gzip.open if path.suffix == ".gz" else open  # the name says gzip: write gzip
    with opener(tmp, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
