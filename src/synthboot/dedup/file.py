"""Deduplicate any JSONL file with the run's dedup layers: `synthboot dedup FILE.jsonl --field NAME`.

Rows are taken in file order; the first of each group of duplicates is kept. The kept rows are
written unchanged (gzip when the name ends in .gz); `--pairs` writes one line per removed row with
the row it duplicates, the layer and the similarity.

With several fields, `match="joined"` compares the fields joined into one text; `match="each"`
removes a row only when every field on its own matches the same earlier row (two different
instructions over one long input are then not duplicates).

With only exact and MinHash layers (and joined fields) the file is streamed (`synthboot.dedup.stream`): read,
decided and written a chunk of rows at a time, holding only the kept rows' keys, so a million rows
fit in a few GB. A semantic layer alone with the static embedder is streamed the same way
(`synthboot.dedup.semantic_stream`: each chunk embedded, compared with the kept rows' vectors); a
semantic layer with other layers, or with a slow embedder, is read whole. The file
command's semantic layer uses the `static` embedder by default (tens of thousands of texts per
second; MiniLM, `--embedder local`, embeds a few hundred per second on two cores).
"""

from __future__ import annotations

import gzip
import json
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthboot.embeddings import is_static_embedder
from synthboot.errors import SynthbootError
from synthboot.jsonl import read_jsonl, write_jsonl
from synthboot.stages.dedup import (LAYER_NAMES, DedupOutcome, ExactLayer, Layer, MinHashLayer, SemanticLayer,
                                    WordOverlapLayer, dedup_records)

DEFAULT_METHODS = ("exact", "minhash", "semantic")
FILE_EMBEDDER = "static"  # the file command's default: files are large, MiniLM takes minutes per 10k rows
CHUNK_ROWS = 65_536  # rows per streamed chunk: its words, signatures and pairs stay in a few hundred MB


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
    from synthboot.spec import DedupSpec  # here: the spec module (pydantic models, yaml) is slow to import

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
            layers.append(SemanticLayer(pick("semantic", s.threshold), embedder or FILE_EMBEDDER))
        else:
            raise SynthbootError(f"unknown dedup method {method!r}; choose from {', '.join(LAYER_NAMES)}")
    if not layers:
        raise SynthbootError("no dedup method given")
    return layers


def dedup_file(path: str | Path, fields: list[str], out: str | Path, *, methods: list[str] | str | None = None,
               threshold: float | None = None, pairs: str | Path | None = None,
               embedder: str | None = None, thresholds: dict[str, float | None] | None = None,
               match: str = "joined", on_progress: Callable[[str, int, int], None] | None = None,
               chunk_rows: int = CHUNK_ROWS) -> DedupFileResult:
    """Write the rows of `path` that are not duplicates (compared on `fields`) to `out`.

    `on_progress(what, done, total)` follows the slow parts: reading a streamed file (bytes) and
    embedding texts (rows).
    """
    if match not in ("joined", "each"):
        raise SynthbootError(f"--match-fields must be joined or each, not {match!r}")
    started = time.perf_counter()
    path = Path(path)
    for target, option in ((out, "--out"), (pairs, "--pairs")):
        if target is not None and _same_file(path, Path(target)):
            raise SynthbootError(f"{option} {target} is the input file: it would be overwritten; write elsewhere")
    layers = make_file_layers(parse_methods(methods), fields, threshold, embedder, thresholds)
    each = match == "each" and len(fields) > 1
    if not each and (all(isinstance(x, (ExactLayer, MinHashLayer)) for x in layers)
                     or (len(layers) == 1 and isinstance(layers[0], SemanticLayer)
                         and is_static_embedder(layers[0].embedder))):
        # (A slow embedder's file is read whole: its progress line counts rows against the total, with an ETA.)
        result = _dedup_streamed(path, fields, Path(out), layers, pairs, on_progress, chunk_rows)
        result.seconds = time.perf_counter() - started
        return result
    rows = read_jsonl(path)
    if rows and not any(f in row for row in rows for f in fields):
        raise SynthbootError(f"no row of {path} has the field(s) {', '.join(fields)}")
    for layer in layers:
        if isinstance(layer, SemanticLayer) and on_progress is not None:
            layer.on_progress = lambda done, total, name=layer.embedder: on_progress(f"embedding ({name})", done, total)
    records = [(i, {f: _text(row.get(f)) for f in fields}) for i, row in enumerate(rows)]
    outcome = dedup_each_field(records, layers, fields) if each else dedup_records(records, layers, fields)
    result = DedupFileResult(rows=len(rows), kept=len(outcome.kept),
                             empty=sum(1 for _, r in records if not "".join(r.values()).strip()),
                             missing=sum(1 for row in rows if not any(f in row for f in fields)))
    for name, _, _ in outcome.removed.values():
        result.removed[name] += 1
    write_jsonl(Path(out), (rows[i] for i in outcome.kept))
    if pairs is not None:
        write_jsonl(Path(pairs), ({"line": i + 1, "duplicate_of_line": j + 1, "layer": layer, "similarity": score,
                                   "text": records[i][1], "duplicate_of_text": records[j][1]}
                                  for i, (layer, j, score) in sorted(outcome.removed.items())))
    result.seconds = time.perf_counter() - started
    return result


def _dedup_streamed(path: Path, fields: list[str], out: Path, layers: list, pairs: str | Path | None,
                    on_progress: Callable[[str, int, int], None] | None, chunk_rows: int) -> DedupFileResult:
    """The file a chunk of rows at a time: exact and MinHash layers (`synthboot.dedup.stream.StreamingDedup`)
    or one semantic layer (`synthboot.dedup.semantic_stream.StreamingSemantic`)."""
    dedup: Any
    if isinstance(layers[0], SemanticLayer):
        from synthboot.dedup.semantic_stream import StreamingSemantic

        dedup = StreamingSemantic(layers[0])
    else:
        from synthboot.dedup.stream import StreamingDedup

        dedup = StreamingDedup(layers)
    result = DedupFileResult(rows=0, kept=0)
    has_field = False
    line_of = array("q")  # row -> line number (blank lines are skipped)
    kept_text: dict[int, dict] = {}  # row -> compared fields, for --pairs only
    out_tmp = out.with_name(out.name + ".tmp")
    pairs_path = Path(pairs) if pairs is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    pairs_fh = None
    try:
        opener = gzip.open if out.suffix == ".gz" else open  # the name says gzip: write gzip
        with opener(out_tmp, "wt", encoding="utf-8") as out_fh:
            if pairs_path is not None:
                pairs_path.parent.mkdir(parents=True, exist_ok=True)
                pairs_fh = open(pairs_path.with_name(pairs_path.name + ".tmp"), "w", encoding="utf-8")
            for chunk in _chunks(path, chunk_rows, on_progress):
                records = []
                for number, line, row in chunk:
                    present = any(f in row for f in fields)
                    has_field = has_field or present
                    result.missing += not present
                    line_of.append(number)
                    records.append({f: _text(row.get(f)) for f in fields})
                texts = ["\n".join(r.values()) for r in records]
                base = result.rows
                removed = dedup.add(texts)
                for k, (number, line, _) in enumerate(chunk):
                    index = base + k
                    if not texts[k].strip():
                        result.empty += 1
                    hit = removed.get(index)
                    if hit is None:
                        out_fh.write(line + "\n")
                        result.kept += 1
                        if pairs_fh is not None:
                            kept_text[index] = records[k]
                        continue
                    layer, j, score = hit
                    result.removed[layer] += 1
                    if pairs_fh is not None:
                        pairs_fh.write(json.dumps({"line": number, "duplicate_of_line": line_of[j], "layer": layer,
                                                   "similarity": score, "text": records[k],
                                                   "duplicate_of_text": kept_text[j]}, ensure_ascii=False) + "\n")
                result.rows += len(chunk)
        if result.rows and not has_field:
            raise SynthbootError(f"no row of {path} has the field(s) {', '.join(fields)}")
        if pairs_fh is not None:
            pairs_fh.close()
            pairs_fh = None
            assert pairs_path is not None
            pairs_path.with_name(pairs_path.name + ".tmp").replace(pairs_path)
        out_tmp.replace(out)
    finally:
        if pairs_fh is not None:
            pairs_fh.close()
        for tmp in (out_tmp, pairs_path.with_name(pairs_path.name + ".tmp") if pairs_path else None):
            if tmp is not None and tmp.exists():
                tmp.unlink()
    return result


def _chunks(path: Path, size: int, on_progress: Callable[[str, int, int], None] | None
            ) -> Iterator[list[tuple[int, str, dict]]]:
    """(line number, line, object) of the file's rows, `size` rows at a time; a bad row is a one-line error."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise SynthbootError(f"{path}: file not found") from None
    except OSError as exc:
        raise SynthbootError(f"{path}: cannot read: {exc.strerror or exc}") from None
    total = path.stat().st_size
    with raw:
        binary = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        chunk: list[tuple[int, str, dict]] = []
        try:
            for number, data in enumerate(binary, 1):
                line = data.decode("utf-8").rstrip("\r\n")
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SynthbootError(f"{path} line {number} is not JSON: {exc.msg}") from None
                if not isinstance(row, dict):
                    raise SynthbootError(f"{path} line {number} is not a JSON object")
                chunk.append((number, line, row))
                if len(chunk) == size:
                    if on_progress is not None:
                        on_progress("dedup (bytes read)", raw.tell(), total)
                    yield chunk
                    chunk = []
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise SynthbootError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        if chunk:
            yield chunk
        if on_progress is not None:
            on_progress("dedup (bytes read)", total, total)


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
