"""Bad specs, generated: every one is a `SpecError` naming the field and the line, one line long,
and the CLI turns it into exit code 2 with no traceback.

Hypothesis mutates the tiny spec in the ways users get specs wrong: malformed YAML, wrong types,
unknown fields, missing required settings, empty seeds, seeds that break their own schema,
impossible split fractions and `module:function` paths that do not import.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import synthboot
from synthboot.cli import main
from synthboot.errors import SpecError
from synthboot.schema import TaskSchema

from .conftest import TINY_SPEC

BASE: dict = yaml.safe_load(TINY_SPEC)
FAST = settings(max_examples=int(os.environ.get("SPEC_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Settings whose values are typed (path -> the mapping that holds them); free-form values like
# descriptions or the task text accept any string and are left out of the wrong-type mutations.
TYPED_PATHS = [("generate", "per_topic"), ("generate", "per_call"), ("generate", "max_tokens"),
               ("generate", "concurrency"), ("generate", "temperature"), ("split", "train"), ("split", "dev"),
               ("split", "test"), ("split", "seed"), ("fields", "question", "type"), ("fields", "answer", "max_length"),
               ("fields", "question", "input"), ("fields", "difficulty", "values"), ("rules", 0, "value"),
               ("rules", 0, "check"), ("topics",), ("seeds",), ("fields",), ("generate",), ("split",), ("rules",),
               ("task",)]
MAPPINGS = [(), ("generate",), ("split",), ("fields", "question"), ("rules", 0), ("dedup",), ("judge",)]

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                 st.text(max_size=20), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2))


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def set_path(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = value
    return data


def check(err: SpecError, text: str) -> None:
    """What every spec error must be: one line, with a line number inside the file."""
    assert "\n" not in str(err) and "\r" not in str(err)
    assert err.line is not None and 1 <= err.line <= max(1, len(text.splitlines())), (str(err), err.line)
    assert "Traceback" not in str(err)


def parse(text: str) -> synthboot.Spec:
    return synthboot.parse_spec(text, source="spec.yaml")


def line_of_key(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.lstrip(" -").startswith(f"{key}:"))


# -- property tests --------------------------------------------------------------------------------

@FAST
@given(st.text(max_size=300))
def test_any_text_is_a_spec_or_a_spec_error(text):
    try:
        parse(text)
    except SpecError as err:
        check(err, text)


@FAST
@given(st.data())
def test_mangled_yaml_is_a_spec_error_with_a_line(data):
    text = TINY_SPEC
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text)))
        junk_text = data.draw(st.sampled_from(["[", "]", "{", "}", ":", "- ", "\t", "'", '"', "&a", "*b", "!!python/object:os.system", "? ", "\n  ", "%", "@", "|", ">"]))
        text = text[:pos] + junk_text + text[pos:]
    try:
        parse(text)
    except SpecError as err:
        check(err, text)


@FAST
@given(path=st.sampled_from(TYPED_PATHS), value=junk)
def test_wrong_types_name_their_field(path, value):
    text = yaml.safe_dump(set_path(BASE, path, value), sort_keys=False, allow_unicode=True)
    try:
        parse(text)
    except SpecError as err:
        check(err, text)
        assert err.field, str(err)
        # The error is about the changed setting, something inside it, or the mapping holding it.
        named, changed = err.field, dotted(path)
        assert named.startswith(changed) or changed.startswith(named) or "seeds" in named, (named, changed, str(err))


@FAST
@given(where=st.sampled_from(MAPPINGS),
       key=st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True), value=junk)
def test_unknown_fields_are_named_with_their_line(where, key, value):
    node = BASE
    for part in where:
        node = node.get(part, {}) if isinstance(node, dict) else node[part]
    assume(key not in node and key not in synthboot.Spec.model_fields and key not in ("schema", "base_dir"))
    text = yaml.safe_dump(set_path(BASE, (*where, key), value), sort_keys=False, allow_unicode=True)
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert info.value.field == dotted((*where, key)), str(info.value)
    assert key in str(info.value)


@FAST
@given(index=st.integers(0, 1), field=st.sampled_from(["question", "answer", "difficulty"]),
       value=st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2), st.just("x" * 400),
                       st.sampled_from(["impossible", "EASY", ""])), drop=st.booleans())
def test_seeds_that_violate_their_schema_are_named(index, field, value, drop):
    data = copy.deepcopy(BASE)
    if drop:
        del data["seeds"][index][field]
    else:
        data["seeds"][index][field] = value
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        parse(text)
    except SpecError as err:
        check(err, text)
        assert err.field == f"seeds[{index}].{field}", str(err)
        return
    # Only a value the schema accepts may pass: a string within bounds, or a valid enum value.
    assert not drop and isinstance(value, str) and (field != "difficulty") and len(value) <= 200


@FAST
@given(train=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3)),
       dev=st.floats(-2, 2), test=st.floats(-2, 2))
def test_impossible_split_fractions(train, dev, test):
    text = yaml.safe_dump(set_path(set_path(set_path(BASE, ("split", "train"), train), ("split", "dev"), dev),
                                   ("split", "test"), test), sort_keys=False)
    possible = all(math.isfinite(v) and 0 <= v <= 1 for v in (train, dev, test)) and abs(train + dev + test - 1) < 1e-6
    try:
        spec = parse(text)
    except SpecError as err:
        check(err, text)
        assert err.field and err.field.startswith("split"), str(err)
        assert not possible
        return
    assert possible, (train, dev, test)
    assert spec.split.train + spec.split.dev + spec.split.test == pytest.approx(1.0)


@FAST
@given(ref=st.one_of(st.sampled_from(["os:no_such_function", "no_such_module_xyz:fn", "::", "os.path:", ":join",
                                      "os.path:sep", "json:JSONDecodeError.nope", "../../etc:passwd",
                                      "os;rm -rf /:x", "tests.support.broken_module:fn", "synthboot:__version__"]),
                     st.from_regex(r"[a-z_.]{1,12}:[a-z_]{1,8}", fullmatch=True)),
       where=st.sampled_from(["rule", "schema"]))
def test_bad_module_function_paths(ref, where):
    data = copy.deepcopy(BASE)
    if where == "rule":
        data["rules"].append({"name": "custom", "check": ref})
        field = "rules[1].check"
    else:
        del data["fields"]
        data["schema"] = ref
        data["inputs"] = ["question"]
        field = "schema"
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        parse(text)
    except SpecError as err:
        check(err, text)
        assert err.field == field, str(err)
        assert err.line == line_of_key(text, "check" if where == "rule" else "schema") or where == "rule"
        return
    # Only a real callable (for a rule) can pass; nothing here is a pydantic model.
    assert where == "rule"


# -- specific cases --------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds_yaml", ["seeds: []", "seeds: null", "seeds: [{}]", "seeds: [[]]", "seeds: {}",
                                        "seeds: [null]", "seeds: 'a string'"])
def test_empty_or_malformed_seeds(seeds_yaml):
    text = TINY_SPEC.split("seeds:")[0] + seeds_yaml + "\ntopics:" + TINY_SPEC.split("topics:")[1]
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert info.value.field.startswith("seeds"), str(info.value)
    assert info.value.line == line_of_key(text, "seeds") or info.value.line == line_of_key(text, "seeds") + 1


def test_deeply_nested_yaml_is_a_spec_error_not_a_crash():
    for text in ["[" * 5000, "a: " + "{b: " * 3000 + "1" + "}" * 3000, "- " * 3000 + "x"]:
        with pytest.raises(SpecError) as info:
            parse(text)
        check(info.value, text)


def test_yaml_tags_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = TINY_SPEC.replace("name: tiny-qa", f"name: !!python/object/apply:os.system ['touch {marker}']")
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert not marker.exists()


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        synthboot.load_spec(tmp_path / "nope.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError) as info:
        synthboot.load_spec(binary)
    assert "\n" not in str(info.value)


# -- through the command line ---------------------------------------------------------------------

BAD_SPECS = {
    "yaml": ("task: x\nfields: [unclosed\n", None),
    "type": (TINY_SPEC.replace("per_call: 2", "per_call: many"), "generate.per_call"),
    "unknown": (TINY_SPEC.replace("split:", "colour: red\nsplit:"), "colour"),
    "empty-seeds": (TINY_SPEC.split("seeds:")[0] + "seeds: []\ntopics:" + TINY_SPEC.split("topics:")[1], "seeds"),
    "seed-schema": (TINY_SPEC.replace("difficulty: medium}", "difficulty: impossible}"), "seeds[1].difficulty"),
    "split": (TINY_SPEC.replace("test: 0.33", "test: 0.9"), "split"),
    "rule-path": (TINY_SPEC.replace("check: min_length", "check: no_such_module_xyz:fn"), "rules[0].check"),
    "deep": ("[" * 5000, None),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_cli_exits_2_with_one_line(case, tmp_path, capsys):
    text, field = BAD_SPECS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert str(path) in lines[0]
    if field:
        assert field in lines[0]
    assert not (tmp_path / "run").exists()  # a bad spec touches nothing


def test_cli_subprocess_long_message_stays_on_one_line(tmp_path):
    """A real process with a narrow terminal width: the message is not wrapped."""
    path = tmp_path / ("a-rather-long-directory-name-" * 3) / "spec.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(TINY_SPEC.replace("per_call: 2", "per_call: many"))
    proc = subprocess.run([sys.executable, "-m", "synthboot.cli", "run", str(path), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env={"COLUMNS": "40", "PATH": "/usr/bin:/bin"},
                          cwd=Path(__file__).parent, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "generate.per_call" in proc.stderr and "Traceback" not in proc.stderr


# -- issue 12, bug 6: field names, patterns and repeated keys, checked when the spec is read ----------

@pytest.mark.parametrize("name, problem", [
    ("class", "is a Python keyword"), ("my field", "is not a Python identifier"),
    ("__class__", "starts with '_'"), ("_private", "starts with '_'"), ("1st", "is not a Python identifier"),
])
def test_a_field_name_that_cannot_be_a_python_name_is_refused_with_its_line(name, problem, tmp_path, capsys):
    text = TINY_SPEC.replace("  answer: {type: str", f"  '{name}': {{type: str")
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert info.value.field == f"fields.{name}" and problem in str(info.value)
    assert info.value.line == next(i for i, line in enumerate(text.splitlines(), 1) if f"'{name}':" in line)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"fields.{name}" in err[0] and "Traceback" not in err[0]


def test_names_that_python_allows_are_accepted():
    text = TINY_SPEC.replace("  answer: {type: str", "  Answer_2: {type: str").replace("answer: \"", "Answer_2: \"") \
        .replace("field: answer", "field: Answer_2")
    assert "Answer_2" in parse(text).fields


def test_a_pattern_that_does_not_compile_is_a_spec_error_at_load(tmp_path, capsys):
    text = TINY_SPEC.replace("input: true, max_length: 200}", "input: true, max_length: 200, pattern: '(['}")
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert info.value.field == "fields.question.pattern" and "invalid regular expression" in str(info.value)
    assert info.value.line == line_of_key(text, "question")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "fields.question.pattern" in capsys.readouterr().err


def test_a_pattern_python_accepts_works_whatever_the_engine():
    # A lookahead: pydantic's default (Rust) regex engine cannot build it and crashed the load.
    text = TINY_SPEC.replace("input: true, max_length: 200}", "input: true, max_length: 200, pattern: '^(?!\\s)'}")
    schema = TaskSchema.from_spec(parse(text))
    schema.validate_item({"question": "Why?", "answer": "Because it is.", "difficulty": "easy"})
    with pytest.raises(pydantic.ValidationError):
        schema.validate_item({"question": " Why?", "answer": "Because it is.", "difficulty": "easy"})


@pytest.mark.parametrize("text, first, again, key", [
    # A field given twice: YAML keeps the last one silently (its max_length 50 became 5000).
    (TINY_SPEC.replace("  difficulty: {type: enum",
                       "  answer: {type: str, max_length: 5000}\n  difficulty: {type: enum"), 6, 7, "answer"),
    # A setting given twice inside one flow mapping.
    (TINY_SPEC.replace("per_call: 2,", "per_call: 2, per_call: 9,"), 12, 12, "per_call"),
    # A top-level section given twice.
    (TINY_SPEC + "split: {train: 0.5, dev: 0.25, test: 0.25}\n", 15, len(TINY_SPEC.splitlines()) + 1, "split"),
])
def test_a_key_repeated_in_a_mapping_is_refused_naming_both_lines(text, first, again, key):
    with pytest.raises(SpecError) as info:
        parse(text)
    check(info.value, text)
    assert f"{key}:" in text.splitlines()[first - 1] and f"{key}:" in text.splitlines()[again - 1]
    assert info.value.line == again
    assert f"{key!r} is given twice, on line {first} and line {again}" in str(info.value)


def test_yaml_merge_keys_still_override_on_purpose():
    text = TINY_SPEC.replace("generate: {per_topic: 2, per_call: 2, max_tokens: 400, concurrency: 2}",
                             "base: &base {per_topic: 2, per_call: 2}\ngenerate: {<<: *base, per_call: 1}")
    from synthboot.spec import _UniqueKeyLoader

    data = yaml.load(text, Loader=_UniqueKeyLoader)
    assert data["generate"] == {"per_topic": 2, "per_call": 1}
