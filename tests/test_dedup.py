"""Layered dedup: each layer on real text, the greedy order, the stage, leakage across splits, the CLI."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3

import numpy as np
import pytest

import synthboot
from synthboot.cli import main
from synthboot.errors import SpecError
from synthboot.loader import parse_spec
from synthboot.stages.dedup import (ExactLayer, MinHashLayer, SemanticLayer, WordOverlapLayer, dedup_records,
                                    dedup_texts, shingles)
from synthboot.stages.leakage import find_leaks
from synthboot.status import run_status
from tests.conftest import TINY_SPEC, t0_prompts


def exact_pairs(texts: list[str], threshold: float) -> dict[tuple[int, int], float]:
    sets = [shingles(t) for t in texts]
    out = {}
    for i, j in itertools.combinations(range(len(texts)), 2):
        a, b = sets[i], sets[j]
        if a and b and (score := len(a & b) / len(a | b)) >= threshold:
            out[(j, i)] = score
    return out


def test_minhash_finds_the_exact_jaccard_pairs_of_real_prompts():
    texts = t0_prompts(600)  # the same passages under different templates: real near-duplicates
    truth = exact_pairs(texts, 0.6)
    assert len(truth) > 100
    found = {(i, j): s for i, hits in enumerate(MinHashLayer(0.6).candidates(texts)) for j, s in hits}
    assert set(found) <= set(truth)  # scored with the exact Jaccard: no false positive
    assert all(found[p] == pytest.approx(truth[p]) for p in found)
    assert len(found) / len(truth) >= 0.95
    assert all(hits == sorted(hits, key=lambda h: -h[1]) for hits in MinHashLayer(0.6).candidates(texts))


def test_minhash_shingle_settings_change_what_matches():
    a, b = "the cat sat on the mat today", "today the cat sat on the mat"
    assert MinHashLayer(0.9).candidates([a, b])[1]  # same word set
    assert not MinHashLayer(0.9, shingle="word", ngram=2).candidates([a, b])[1]  # word order differs
    assert shingles("abcd", "char", 3) == {"abc", "bcd"}


def test_exact_layer_normalises_case_and_punctuation():
    links = ExactLayer().candidates(["What is a decorator?", "what is a DECORATOR", "Something else", ""])
    assert links == [[], [(0, 1.0)], [], []]


def test_word_overlap_is_the_seed_rule():
    links = WordOverlapLayer(0.5).candidates(["a b c d", "a b c e", "x y z"])
    assert links[1] == [(0, 0.75)] and links[2] == []


def test_semantic_layer_catches_a_paraphrase_minhash_misses():
    texts = ["How do I read a file line by line in Python?", "What is the way to iterate over the lines of a file in Python?",
             "Explain the global interpreter lock."]
    assert not MinHashLayer(0.6).candidates(texts)[1]
    semantic = SemanticLayer(0.8).candidates(texts)
    assert semantic[1] and semantic[1][0][0] == 0 and semantic[1][0][1] >= 0.8
    assert semantic[2] == []


def test_greedy_order_reference_and_first_layer_wins():
    items = [(10, "What is a decorator in Python?"), (11, "what is a decorator in python"),
             (12, "What is a list comprehension?"), (13, "what is a list comprehension")]
    outcome = dedup_texts(items, [ExactLayer(), MinHashLayer(0.5)], reference=[(1, "What is a list comprehension?")])
    assert outcome.kept == [10]
    assert outcome.removed == {11: ("exact", 10, 1.0), 12: ("exact", 1, 1.0), 13: ("exact", 1, 1.0)}


def test_a_match_on_a_removed_item_does_not_count():
    # 2 duplicates 1 (removed as a copy of 0); 2 itself is not close to 0, so it stays.
    items = [(0, "a b c d e f"), (1, "a b c d e f g h"), (2, "c d e f g h i j")]
    outcome = dedup_texts(items, [MinHashLayer(0.7, num_perm=256)])
    assert 1 in outcome.removed and 2 in outcome.kept


def test_each_layer_compares_its_own_fields():
    rows = [(0, {"q": "What is X?", "a": "alpha"}), (1, {"q": "What is X?", "a": "beta"})]
    assert dedup_records(rows, [ExactLayer(fields=["a"])], ["q"]).kept == [0, 1]
    assert dedup_records(rows, [ExactLayer()], ["q"]).removed == {1: ("exact", 0, 1.0)}


def test_spec_switches_layers_and_checks_their_fields():
    spec = parse_spec(TINY_SPEC + "dedup: {exact: false, minhash: {threshold: 0.8, fields: [answer]}, semantic: false}\n")
    assert not spec.dedup.exact.enabled and not spec.dedup.semantic.enabled
    assert spec.dedup.minhash.threshold == 0.8 and spec.dedup.minhash.fields == ["answer"]
    with pytest.raises(SpecError, match="dedup.minhash.fields"):
        parse_spec(TINY_SPEC + "dedup: {minhash: {fields: [nope]}}\n")


def test_stage_records_layer_match_and_score_and_status_counts_them(tiny_run, copy_run):
    run = copy_run(tiny_run)
    with sqlite3.connect(run / "synthboot.db") as db:
        rows = db.execute("SELECT reason, matched_id, score FROM decisions WHERE stage = 'dedup' AND kept = 0").fetchall()
    status = run_status(run)
    assert sum(status.dedup_by_layer.values()) == len(rows)
    assert set(status.dedup_by_layer) >= {"exact", "minhash", "semantic"}
    for reason, matched, score in rows:
        assert reason.startswith("duplicate:") and matched is not None and 0 < score <= 1


def test_imported_human_test_example_keeps_its_twin_out_of_train_and_dev(tiny_run, copy_run, tmp_path):
    from synthboot.importing import import_examples
    from synthboot.store import Store

    run = copy_run(tiny_run)
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_SPEC)
    with Store(run) as store:
        splits = store.splits()
        victim = next(c for c in store.candidates(origin="lm") if (s := splits.get(c.id)) is not None and s.split in ("train", "dev"))
    human = tmp_path / "human.jsonl"
    human.write_text(json.dumps({**victim.fields, "question": victim.fields["question"].upper()}) + "\n")
    with Store(run) as store:
        import_examples(store, synthboot.load_spec(spec_path), human, "test")
    result = synthboot.run(spec_path, run)
    assert result.lm_calls_made == 0
    with Store(run) as store:
        decision = store.decisions("dedup")[victim.id]
        assert decision.reason == "duplicate:exact"
        assert victim.id not in store.splits()
        assert find_leaks(store, synthboot.load_spec(spec_path)) == []


def test_split_keeps_near_duplicates_together_when_dedup_is_off(tiny_run, copy_run, tmp_path):
    from synthboot.store import Store

    run = copy_run(tiny_run)
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_SPEC + "dedup: {exact: false, minhash: false, semantic: false}\n")
    synthboot.run(spec_path, run)
    spec = synthboot.load_spec(spec_path)
    with Store(run) as store:
        kept = [c for c in store.candidates(origin="lm") if c.id in store.splits()]
        splits = {cid: r.split for cid, r in store.splits().items()}
        assert find_leaks(store, spec) == []
    by_text: dict[str, set[str]] = {}
    for c in kept:
        by_text.setdefault(" ".join(c.fields["question"].lower().split()), set()).add(splits[c.id])
    assert all(len(s) == 1 for s in by_text.values())


def test_dedup_command_on_any_jsonl(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"q": "What is a decorator in Python?", "n": 1}, {"q": "what is a decorator in python", "n": 2},
        {"q": "How do I open a file for reading in Python?", "n": 3},
        {"q": "How can I open a file for reading in Python?", "n": 4}, {"n": 5}]) + "\n")
    out, pairs = tmp_path / "kept.jsonl", tmp_path / "pairs.jsonl"
    code = main(["dedup", str(src), "--field", "q", "--method", "exact,minhash", "--out", str(out), "--pairs", str(pairs)])
    assert code == 0
    assert [json.loads(line)["n"] for line in out.read_text().splitlines()] == [1, 3, 5]
    found = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert [(p["line"], p["duplicate_of_line"], p["layer"]) for p in found] == [(2, 1, "exact"), (4, 3, "minhash")]
    assert "5 rows, 3 kept, 2 removed (exact 1, minhash 1); 1 without q (kept, not compared)" in capsys.readouterr().out
    assert main(["dedup", str(tmp_path / "missing.jsonl"), "--field", "q", "--out", str(out)]) == 2
    assert main(["dedup", str(src), "--field", "q", "--method", "fuzzy", "--out", str(out)]) == 2


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dedup_command_flags(tmp_path, capsys):
    import gzip

    src = _jsonl(tmp_path / "in.jsonl", [{"q": "a b c d", "n": 1}, {"q": "a b c e", "n": 2}, {"q": "x y z w", "n": 3}])
    out = tmp_path / "kept.jsonl.gz"

    def kept(*args: str) -> list[int]:
        assert main(["dedup", str(src), "--field", "q", "--out", str(out), *args]) == 0, capsys.readouterr().err
        with gzip.open(out, "rt") as fh:  # a .gz name gets gzip
            return [json.loads(line)["n"] for line in fh]

    # word overlap of rows 1 and 2 is exactly 3/4: >= like the other layers
    assert kept("--method", "word_overlap", "--word-overlap-threshold", "0.75") == [1, 3]
    assert kept("--method", "word_overlap", "--threshold", "0.76") == [1, 2, 3]
    # 0 is a threshold, not "use the default" (0.85 would keep row 2)
    assert kept("--method", "word_overlap", "--threshold", "0") == [1, 3]
    # spaces in the method list; Jaccard of rows 1 and 2 is 3/5, and a per-layer flag wins over --threshold
    assert kept("--method", " exact , minhash ", "--threshold", "0.6") == [1, 3]
    assert kept("--method", "exact, minhash", "--minhash-threshold", "0.7", "--threshold", "0") == [1, 2, 3]
    capsys.readouterr()
    assert main(["dedup", str(src), "--field", "q", "--out", str(out), "--method", "exact",
                 "--embedder", "static"]) == 2
    assert "semantic" in capsys.readouterr().err


def test_dedup_match_fields_each(tmp_path, capsys):
    passage = "The river rose in spring and flooded the fields along the valley for three weeks."
    src = _jsonl(tmp_path / "in.jsonl", [{"instruction": "Summarise the passage.", "input": passage},
                                         {"instruction": "List the places named.", "input": passage},
                                         {"instruction": "Summarise the passage!", "input": passage}])
    out = tmp_path / "kept.jsonl"
    args = ["dedup", str(src), "--field", "instruction", "--field", "input", "--out", str(out),
            "--method", "exact,minhash", "--json"]
    assert main(args) == 0
    joined = json.loads(capsys.readouterr().out)
    assert joined["schema_version"] == 1 and joined["kind"] == "dedup" and joined["kept"] == 1  # the passage dominates
    assert main([*args, "--match-fields", "each"]) == 0
    each = json.loads(capsys.readouterr().out)
    assert each["kept"] == 2 and each["removed"] == {"exact": 1}  # only the same instruction is a duplicate
    assert [json.loads(line)["instruction"] for line in out.read_text().splitlines()] == [
        "Summarise the passage.", "List the places named."]


def test_dedup_summary_is_one_line_when_piped(tmp_path):
    import sys

    from tests.support.procs import env, run

    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "kept.jsonl"
    src = _jsonl(tmp_path / "in.jsonl", [{"q": "one"}, {"q": "one"}])
    proc = run([sys.executable, "-m", "synthboot.cli", "dedup", str(src), "--field", "q", "--method", "exact",
                "--out", str(deep)], env=env(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and str(deep) in proc.stdout


def test_minhash_signatures_match_datasketch_estimates():
    # The vectorised signatures estimate Jaccard as well as datasketch's MinHash does.
    from datasketch import MinHash

    texts = t0_prompts(40)
    layer = MinHashLayer(0.5, num_perm=256)
    sig = layer.signatures(*layer.shingle_matrix(texts))
    sets = [shingles(t) for t in texts]
    errors_ours, errors_ds = [], []
    ds = []
    for s in sets:
        m = MinHash(num_perm=256, seed=3)
        m.update_batch([w.encode() for w in s])
        ds.append(m)
    for i, j in itertools.combinations(range(len(texts)), 2):
        truth = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        errors_ours.append(abs((sig[:, i] == sig[:, j]).mean() - truth))
        errors_ds.append(abs(ds[i].jaccard(ds[j]) - truth))
    assert np.mean(errors_ours) <= np.mean(errors_ds) * 1.5 + 0.01


def test_vectorised_words_are_the_regex_words():
    # MinHashLayer's word shingles come from stages.tokens, not from `shingles`: the same words,
    # Unicode and final sigma included, with equal ids exactly for equal words.
    from synthboot.stages.tokens import word_tokens

    texts = ["Ünïcode wörds, ΣΑΣ_x 𝔘𝔫𝔦 İstanbul ½ 日本語テキスト ΟΔΟΣ", "ΣΑΣ", "\ud800 lone", "", "a", "ΣA Σ",
             *t0_prompts(300)]
    text_of, ids = word_tokens(texts)
    words = [re.findall(r"\w+", t.lower()) for t in texts]
    assert text_of.tolist() == [k for k, ws in enumerate(words) for _ in ws]
    flat = [w for ws in words for w in ws]
    assert len(set(zip(flat, ids.tolist()))) == len(set(flat)) == len(set(ids.tolist()))


@pytest.mark.parametrize("settings", [{"threshold": 0.85}, {"threshold": 0.6, "max_bucket": 2},
                                      {"threshold": 0.7, "ngram": 3}, {"threshold": 0.8, "shingle": "char", "ngram": 5}])
def test_minhash_in_blocks_equals_the_whole_corpus_layer(settings):
    # What the Ray engine runs, here in one process: blocks of texts shingled and signed apart,
    # buckets grouped by partition. Content hashes make it the layer's very result.
    from synthboot.engines.ray_minhash import minhash_candidates

    texts = t0_prompts(600)
    texts += ["", "   ", texts[3].upper()]  # empty texts, and a case-only copy
    layer = MinHashLayer(**settings)
    whole = layer.candidates(texts)
    assert sum(map(len, whole)) > 20
    assert minhash_candidates(texts, layer, run_local=True, blocks=7, partitions=3) == whole


def test_dedup_refuses_to_overwrite_its_input(tmp_path, capsys):
    """Issue 12, bug 8: `--out` equal to the input overwrote it."""
    src = tmp_path / "in.jsonl"
    text = "\n".join(json.dumps({"q": q}) for q in ["What is a decorator?", "what is a decorator", "Why use yield?"])
    src.write_text(text + "\n")
    (tmp_path / "sub").mkdir()
    for out in (src, tmp_path / "sub" / ".." / "in.jsonl"):
        assert main(["dedup", str(src), "--field", "q", "--method", "exact", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is the input file" in err[0]
    assert main(["dedup", str(src), "--field", "q", "--method", "exact", "--out", str(tmp_path / "o.jsonl"),
                 "--pairs", str(src)]) == 2
    assert src.read_text() == text + "\n"


def test_shingle_rows_and_exact_jaccard_are_the_word_sets_jaccard():
    # The streamed pass reads shingles from `rows_from_ids` (no scipy) and scores pairs in small
    # batches sharing one marks table: both must give the plain set Jaccard of the regex words.
    from synthboot.stages.dedup import exact_jaccard, jaccard_block_rows
    from synthboot.stages.tokens import content_hashes, words_and_vocabulary

    texts = t0_prompts(400)
    texts += [texts[7] + " extra words here", "", "Ünïcode wörds wörds", texts[7]]
    layer = MinHashLayer(0.85)
    text_of, ids, words = words_and_vocabulary(texts)
    rows, hashes = layer.rows_from_ids(len(texts), text_of, ids, content_hashes(words))
    matrix, same_hashes = layer.matrix_from_ids(len(texts), text_of, ids, content_hashes(words))
    assert np.array_equal(rows.indptr, matrix.indptr) and np.array_equal(rows.indices, matrix.indices)
    assert rows.shape == matrix.shape and np.array_equal(hashes, same_hashes)
    vocabulary = [w.decode() for w in words.to_pylist()]
    sets = [set(re.findall(r"\w+", t.lower())) for t in texts]
    for k, expected in enumerate(sets):
        row = rows.indices[rows.indptr[k]:rows.indptr[k + 1]]
        assert (np.diff(row) > 0).all() and {vocabulary[c] for c in row} == expected

    rng = np.random.default_rng(0)
    i = rng.integers(0, len(texts), 3000)
    j = rng.integers(0, len(texts), 3000)
    i[:4], j[:4] = [len(texts) - 1, len(texts) - 4, len(texts) - 3, 5], [7, 7, len(texts) - 3, 5]  # copy, near, empty
    truth = np.array([len(sets[a] & sets[b]) / max(1, len(sets[a] | sets[b])) for a, b in zip(i, j)])
    assert np.array_equal(exact_jaccard(rows, i, j), truth)
    assert truth[0] == 1.0 and 0.5 < truth[1] < 1.0 and truth[2] == 0.0
    # Small batches with one shared table (as the streamed greedy pass scores its blocks of rows).
    marks = np.zeros(jaccard_block_rows(rows.shape[1]) * rows.shape[1], dtype=bool)
    for lo in range(0, 3000, 250):
        assert np.array_equal(exact_jaccard(rows, i[lo:lo + 250], j[lo:lo + 250], marks), truth[lo:lo + 250])
        assert not marks.any()  # left all False for the next batch
