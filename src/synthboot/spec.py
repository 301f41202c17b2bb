"""The spec file: one YAML document -> a typed, validated `Spec`.

Every error names the field that is wrong and, when the spec came from YAML, the line it is on,
so a user never reads a traceback to find a typo.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthboot.errors import SpecError

FieldType = Literal["str", "int", "float", "bool", "enum", "list[str]"]


class _Strict(BaseModel):
    # Unknown keys are typos far more often than intent: refuse them.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FieldSpec(_Strict):
    """One field of the task's examples."""

    type: FieldType = "str"
    description: str = ""
    values: list[str] | None = None
    # enum only: what each value means. The conditioned strategies show the generator only the
    # meaning of the value a call asks for: a 1.5B model shown a glossary of 20 intents in one
    # description wrote utterances for the wrong intent (BENCHMARKS.md, CLINC150).
    meanings: dict[str, str] | None = None
    # Upper bounds keep absurd values from reaching pydantic's schema builder (which overflows).
    min_length: int | None = Field(None, ge=0, le=10_000_000)
    max_length: int | None = Field(None, ge=1, le=10_000_000)
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    input: bool = False
    # list[str] only: bounds on the number of items and on each item's length (default checks,
    # synthboot.checks; items also must be non-empty text, not JSON fragments).
    min_items: int | None = Field(None, ge=0, le=10_000)
    max_items: int | None = Field(None, ge=1, le=10_000)
    item_max_length: int | None = Field(None, ge=1, le=10_000_000)

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str | None) -> str | None:
        # Compiled now: a bad pattern found while validating generated rows is an internal error.
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _enum_has_values(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum field needs a non-empty `values` list")
        if self.type != "enum" and self.values:
            raise ValueError("`values` is only for fields of type enum")
        if self.meanings is not None:
            if self.type != "enum":
                raise ValueError("`meanings` is only for fields of type enum")
            unknown = sorted(set(self.meanings) - set(self.values or []))
            if unknown:
                raise ValueError(f"`meanings` names values not in `values`: {', '.join(unknown)}")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError("min_length is larger than max_length")
        if self.type != "list[str]" and (self.min_items, self.max_items, self.item_max_length) != (None, None, None):
            raise ValueError("min_items, max_items and item_max_length are only for fields of type list[str]")
        if self.min_items is not None and self.max_items is not None and self.min_items > self.max_items:
            raise ValueError("min_items is larger than max_items")
        return self


class GenerateSpec(_Strict):
    """How candidates are generated."""

    lm: str = "local"
    api_base: str | None = None
    per_topic: int = Field(20, ge=1, le=1_000_000)
    per_call: int = Field(5, ge=1, le=50)
    temperature: float = Field(0.9, ge=0, le=2)
    max_tokens: int = Field(1024, ge=16, le=10_000_000)
    module: Literal["predict", "cot"] = "predict"
    concurrency: int = Field(2, ge=1, le=256)
    # Provider limits for remote LMs (generator and judge on the same model share them); None is
    # unlimited. Retries back off exponentially with jitter on 429, 5xx and timeouts, honouring
    # Retry-After (synthboot.lm.limits).
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    timeout_s: float | None = Field(None, gt=0)
    # Bound on every generated string the schema leaves unbounded: a small model under a grammar
    # otherwise runs one field to max_tokens (seen once in three outputs).
    # How many seed examples each call shows (a window rotating by batch); None shows them all.
    seeds_per_call: int | None = Field(None, ge=1)
    max_string_length: int = Field(400, ge=8, le=10_000_000)
    instructions: str | None = None
    # How a batch asks for examples (synthboot.stages.strategies; chosen by BENCHMARKS.md's
    # generation-strategy table): few_shot, conditioned, style_seeds, subtopics or mutate.
    strategy: Literal["few_shot", "conditioned", "style_seeds", "subtopics", "mutate"] = "conditioned"
    # How many subtopics the LM proposes when the spec lists no `topics` (stored in the run).
    subtopics: int = Field(8, ge=1, le=200)


class RuleSpec(_Strict):
    """A named quality rule. `check` is a built-in rule name or `module:function`."""

    name: str
    check: str
    field: str | None = None
    value: int | float | None = None
    values: list[str] | None = None
    phrases: list[str] | None = None
    pattern: str | None = None
    fields: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class _LayerSpec(_Strict):
    enabled: bool = True
    fields: list[str] | None = None  # the fields this layer compares (default: dedup.fields)


class ExactSpec(_LayerSpec):
    pass


class WordOverlapSpec(_LayerSpec):
    # The seed tutorial's rule; MinHash and embeddings separate paraphrases better (BENCHMARKS.md).
    enabled: bool = False
    threshold: float = Field(0.85, gt=0, le=1)


class MinHashSpec(_LayerSpec):
    threshold: float = Field(0.6, gt=0, le=1)  # Jaccard of the shingle sets (BENCHMARKS.md: why 0.6)
    num_perm: int = Field(128, ge=16, le=1024)
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(1, ge=1, le=10)


class SemanticSpec(_LayerSpec):
    threshold: float = Field(0.9, gt=0, le=1)  # cosine of the embeddings
    embedder: str = "local"  # synthboot.embeddings: 'local' (MiniLM), 'static', or a model directory


class DedupSpec(_Strict):
    fields: list[str] | None = None  # default: the input fields
    exact: ExactSpec = Field(default_factory=ExactSpec)
    word_overlap: WordOverlapSpec = Field(default_factory=WordOverlapSpec)
    minhash: MinHashSpec = Field(default_factory=MinHashSpec)
    semantic: SemanticSpec = Field(default_factory=SemanticSpec)

    @field_validator("exact", "word_overlap", "minhash", "semantic", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        # `exact: false` is shorthand for `exact: {enabled: false}`.
        return {"enabled": value} if isinstance(value, bool) else value


class DiversitySpec(_Strict):
    field: str | None = None  # the enum field whose mix matters (default: `difficulty` if present)
    targets: dict[str, float] = Field(default_factory=dict)
    min_share: dict[str, float] = Field(default_factory=dict)
    min_topics: int = Field(5, ge=0)
    near_seed_threshold: float = Field(0.8, gt=0, le=1)  # cosine above which an example "copies" a seed
    max_near_seed_rate: float = Field(0.3, ge=0, le=1)
    max_divergence: float = Field(0.25, ge=0, le=1)  # total variation distance from a target before warning
    # Embedding metrics (nearest-neighbour distance, seed copying); default: when semantic dedup is on.
    embeddings: bool | None = None


class TopUpSpec(_Strict):
    """More generation rounds, aimed at under-filled strata, until `count` examples survive every filter."""

    stratify: str | None = None  # 'topic' or an enum field (default: split.stratify, else topic)
    per_stratum: dict[str, int] = Field(default_factory=dict)  # minimum kept per stratum value
    max_rounds: int = Field(3, ge=0, le=100)
    max_calls: int | None = Field(None, ge=1)  # cap on generation calls over all top-up rounds
    overshoot: float = Field(1.5, ge=1, le=10)  # ask for this many times the gap: filters reject some


class JudgeSpec(_Strict):
    enabled: bool = False
    lm: str | None = None  # defaults to the generator's LM
    api_base: str | None = None
    threshold: int = Field(3, ge=1, le=5)
    rubric: str | None = None


QuestionType = Literal["factual", "reasoning", "unanswerable"]


class GroundingSpec(_Strict):
    """Checks that an example generated from a chunk is grounded in it (synthboot.stages.grounding)."""

    enabled: bool = True
    # Share of the answer's content words found in its context; answers below it are `ungrounded`.
    min_support: float = Field(0.6, ge=0, le=1)
    # Cosine of the answer to its closest context sentence (null: no embedding check).
    min_similarity: float | None = Field(0.25, ge=-1, le=1)
    embedder: str = "local"
    # A question this close (difflib ratio of the words) to a sentence of its context is `trivial_copy`.
    max_copy: float = Field(0.8, gt=0, le=1)
    # An LM judge scoring support 1-5 with a rubric (the judge's LM, else the generator's).
    judge: bool = False
    threshold: int = Field(3, ge=1, le=5)
    rubric: str | None = None
    # Reject questions the generator answers right without the context (one more call per example).
    closed_book: bool = False


class SourcesSpec(_Strict):
    """Documents to generate from (synthboot.sources): files or globs relative to the spec."""

    paths: list[str] = Field(..., min_length=1)
    # Chunking: sections at headings, then windows of `max_tokens` words overlapping by `overlap`.
    max_tokens: int = Field(200, ge=16, le=100_000)
    overlap: int = Field(30, ge=0, le=100_000)
    min_tokens: int = Field(20, ge=0, le=100_000)  # shorter sections join the next one
    per_chunk: int = Field(2, ge=1, le=50)  # examples asked for per chunk (one call)
    question_types: dict[QuestionType, float] = Field(
        default_factory=lambda: {"factual": 0.7, "reasoning": 0.2, "unanswerable": 0.1})  # type: ignore[arg-type]
    hops: int = Field(2, ge=2, le=6)  # neighbouring chunks a reasoning question is given
    context_field: str = "context"
    question_field: str | None = None  # default: the first input field other than the context
    answer_field: str | None = None  # default: the first str output field
    unanswerable_answer: str = "The context does not say."
    grounding: GroundingSpec = Field(default_factory=GroundingSpec)

    @model_validator(mode="after")
    def _consistent(self) -> SourcesSpec:
        if self.overlap >= self.max_tokens:
            raise ValueError("overlap must be smaller than max_tokens")
        if not self.question_types or sum(self.question_types.values()) <= 0 \
                or any(v < 0 for v in self.question_types.values()):
            raise ValueError("question_types needs at least one type with a positive share")
        return self


class ChecksSpec(_Strict):
    """Checks every spec gets without writing a rule (synthboot.checks), run by validate.

    Empty or whitespace-only strings and the list[str] item checks always run; these can be
    switched off.
    """

    # An input that equals or merely restates an enum output's label ("billing", "Label: billing").
    answer_leak: bool = True
    # A text at its length bound (max_length, else generate.max_string_length) that ends mid-word.
    truncated: bool = True
    # An output with letters of a script neither the seeds nor its inputs use (Chinese in English).
    mixed_script: bool = True


class VerifyFieldSpec(_Strict):
    """How one output field's generated value is compared with the verifier's prediction."""

    match: Literal["exact", "normalized", "embedding", "jaccard", "number"] | None = None  # default by type
    threshold: float | None = Field(None, ge=0, le=1)  # embedding cosine or list Jaccard
    tolerance: float | None = Field(None, ge=0)  # numbers: absolute or relative difference allowed


class LabelVoteSpec(_Strict):
    """The offline label check: a classifier (or nearest-neighbour) vote in embedding space over trusted labelled rows."""

    enabled: bool = True
    # 'classifier': logistic regression on the trusted rows' embeddings; 'neighbours': each label
    # scored by its nearest trusted rows (BENCHMARKS.md: the classifier rejects more confusable swaps).
    method: Literal["classifier", "neighbours"] = "classifier"
    # classifier: reject when log P(another label) - log P(own label) is at least this (BENCHMARKS.md: why 0.3).
    log_ratio: float = Field(0.3, ge=0, le=50)
    # neighbours: each label's score is the mean cosine of its `per_label` trusted rows nearest the candidate.
    per_label: int = Field(2, ge=1, le=100)
    # neighbours: reject when another label scores this much above the candidate's own.
    margin: float = Field(0.08, ge=0, le=2)
    min_similarity: float = Field(0.3, ge=-1, le=1)  # a winning label less similar than this does not vote
    # Each label's name in words ("report lost card") and its `meanings:` entry vote as trusted
    # rows of that label: with two seeds a label, the name is a third view of what it means
    # (BENCHMARKS.md, CLINC150, 2 seeds an intent: confusable swaps rejected 89-90% -> 90-93%, right
    # rows kept 91-95% -> 94-98%; the CLINC train-on-synthetic gap closed 12% -> 32% at 400 asked).
    label_texts: bool = True
    # Same text: equal after normalising, or a cosine at least this (then another label is a conflict).
    near_duplicate: float = Field(0.92, gt=0, le=1)
    embedder: str = "local"


class VerifySpec(_Strict):
    """Verify: is each candidate's output right for its input (synthboot.stages.verify)."""

    enabled: bool = True
    lm: str | None = None  # the verifier; defaults to the generator's LM
    api_base: str | None = None
    # cot: reason first; pot (math): int/float fields are computed by a short arithmetic program
    # the verifier writes, evaluated safely by synthboot (stages.verify_pot, BENCHMARKS.md).
    module: Literal["predict", "cot", "pot"] = "predict"
    # Output fields the verifier predicts and compares; default: every output except the
    # diversity field (an attribute such as difficulty describes the example, it is not its answer)
    # and a field named `topic`.
    fields: list[str] | None = None
    text_threshold: float = Field(0.5, ge=0, le=1)  # cosine of MiniLM embeddings for free text (BENCHMARKS.md)
    list_threshold: float = Field(0.5, ge=0, le=1)  # Jaccard of normalised items
    tolerance: float = Field(1e-6, ge=0)  # floats: absolute or relative difference allowed
    per_field: dict[str, VerifyFieldSpec] = Field(default_factory=dict)
    # Self-consistency: k sampled predictions; kept only where a strict majority agrees.
    self_consistency: int = Field(1, ge=1, le=32)
    # Samples that must agree with the generated value; default a strict majority. With `pot`, 1 of
    # k keeps an answer some program reaches (BENCHMARKS.md: planted wrong integers still rejected).
    min_agreeing: int | None = Field(None, ge=1, le=32)
    temperature: float = Field(0.7, ge=0, le=2)  # of the self-consistency samples (k > 1)
    max_tokens: int = Field(512, ge=16, le=10_000_000)
    embedder: str = "local"  # text agreement: 'local' (MiniLM) or 'static'
    label_vote: LabelVoteSpec = Field(default_factory=LabelVoteSpec)
    lm_check: bool = True  # False: only the offline checks (label vote, near-duplicate conflicts)

    @field_validator("label_vote", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _agreeing_within_samples(self) -> VerifySpec:
        if self.min_agreeing is not None and self.min_agreeing > self.self_consistency:
            raise ValueError(f"min_agreeing ({self.min_agreeing}) is more than self_consistency "
                             f"({self.self_consistency}) samples")
        return self


class SplitSpec(_Strict):
    train: float = Field(0.2, ge=0, le=1)
    dev: float = Field(0.6, ge=0, le=1)
    test: float = Field(0.2, ge=0, le=1)
    seed: int = 42
    stratify: str | None = None
    include_seeds: bool = False

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitSpec:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + dev + test must be 1.0, got {total:g}")
        return self


class Spec(_Strict):
    """A whole run: the task, its seeds and topics, and every stage's settings."""

    name: str = "synthboot-task"
    task: str = Field(..., min_length=1, description="What the examples are for; the generator's instructions.")
    fields: dict[str, FieldSpec] | None = None
    schema_ref: str | None = Field(None, alias="schema")
    inputs: list[str] | None = None
    seeds: list[dict[str, Any]] = Field(default_factory=list)
    seeds_file: str | None = None
    # Optional: with none (and no `sources`), the LM proposes `generate.subtopics` of them
    # (synthboot.stages.subtopics); with `sources`, the documents are the topics.
    topics: list[str] = Field(default_factory=list)
    sources: SourcesSpec | None = None
    generate: GenerateSpec = Field(default_factory=GenerateSpec)
    rules: list[RuleSpec] = Field(default_factory=list)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    diversity: DiversitySpec = Field(default_factory=DiversitySpec)
    checks: ChecksSpec = Field(default_factory=ChecksSpec)
    verify: VerifySpec = Field(default_factory=VerifySpec)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    # How many kept examples the user wants; short of it, top-up rounds generate more (synthboot.topup).
    count: int | None = Field(None, ge=1)
    topup: TopUpSpec = Field(default_factory=TopUpSpec)
    # Directory that relative paths in the spec (seeds_file) are resolved against.
    base_dir: str = Field(".", exclude=True)

    def meaning(self, field: str, value: str) -> str | None:
        """What the spec says an enum value means (`meanings:`), if it says."""
        spec = self.fields.get(field) if self.fields else None
        return (spec.meanings or {}).get(value) if spec else None

    @field_validator("topics")
    @classmethod
    def _topics_unique(cls, topics: list[str]) -> list[str]:
        if any(not t.strip() for t in topics):
            raise ValueError("topics must be non-empty strings")
        if len(set(topics)) != len(topics):
            raise ValueError("topics must be unique")
        return topics

    @field_validator("fields")
    @classmethod
    def _field_names_are_identifiers(cls, fields: dict[str, FieldSpec] | None) -> dict[str, FieldSpec] | None:
        # A field becomes a DSPy signature field, a pydantic attribute and a keyword argument: a name
        # that cannot be one fails late (at `optimize`) or crashes (`__class__`). Check it here.
        for name in fields or {}:
            problem = field_name_problem(name)
            if problem:
                raise SpecError(f"field name {name!r} {problem}", field=f"fields.{name}")
        return fields

    @field_validator("rules")
    @classmethod
    def _rule_names_unique(cls, rules: list[RuleSpec]) -> list[RuleSpec]:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique (they are the rejection reasons)")
        return rules

    @model_validator(mode="after")
    def _fields_or_schema(self) -> Spec:
        # A SpecError (not a ValueError) passes through pydantic with the field it names.
        if (self.fields is None) == (self.schema_ref is None):
            raise SpecError("give exactly one of `fields` or `schema`",
                            field="fields" if self.fields is None else "schema")
        if self.fields is not None and not self.fields:
            raise SpecError("`fields` is empty", field="fields")
        # No `topics` and no `sources`: the generator's LM proposes the topics (stages.subtopics).
        if self.sources is not None and self.dedup.fields is None and self.fields:
            # Examples of one chunk share its whole text as context: compared on it, they would all be
            # near-duplicates of each other. Dedup (and leakage) compare the other inputs instead.
            self.dedup.fields = [n for n, f in self.fields.items() if f.input and n != self.sources.context_field] \
                or None
        if self.sources is not None and self.count is not None:
            raise SpecError("`count` (top-up rounds) is not supported with `sources` yet: raise sources.per_chunk",
                            field="count")
        return self

    def content_hash(self) -> str:
        payload = self.model_dump(mode="json", by_alias=True, exclude={"base_dir"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def field_name_problem(name: str) -> str | None:
    """Why `name` cannot name a task field (None when it can)."""
    if not name.isidentifier() or not name.isascii():
        return "is not a Python identifier (letters, digits and _, not starting with a digit)"
    if name.startswith("_"):
        return "starts with '_' (reserved for Python and pydantic internals)"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    return None


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one YAML mapping: YAML keeps the last silently, we refuse it."""

    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"key {key!r} is given twice, on line {first} and line {again}")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key repeated in a mapping (`max_length` twice, say)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` overrides on purpose
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the base loader reports it
        return super().construct_mapping(node, deep=deep)


# A semantic check run on the parsed spec (synthboot.loader passes the schema's and the rules'),
# so that its `SpecError`s are also reported with the YAML line of the field they name.
SpecCheck = Callable[["Spec"], None]


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None, *, check: SpecCheck | None = None) -> Spec:
    """Read and validate a YAML spec's structure. Raises `SpecError` naming the field and the line.

    `synthboot.load_spec` (synthboot.loader) is this plus the semantic checks."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec: {exc}", path=str(path)) from None
    return parse_spec(text, source=str(path), base_dir=path.parent, overrides=overrides, check=check)


def parse_spec(text: str, *, source: str = "<spec>", base_dir: str | Path = ".",
               overrides: dict[str, Any] | None = None, check: SpecCheck | None = None) -> Spec:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no tag runs code
        root = yaml.compose(text)
    except DuplicateKeyError as exc:
        raise SpecError(str(exc), path=source, line=exc.again) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark else None
        if line is None and isinstance(getattr(exc, "position", None), int):  # a ReaderError: a bad character
            line = text[:exc.position].count("\n") + 1
        # An unexpected end of file is reported past the last line: point at the last line.
        line = max(1, min(line or 1, len(text.splitlines())))
        raise SpecError(f"invalid YAML: {problem}", path=source, line=line) from None
    except RecursionError:
        # PyYAML parses nested flow collections recursively: `[[[[...` deep enough overflows it.
        raise SpecError("invalid YAML: nested too deeply", path=source, line=1) from None
    if not isinstance(data, dict):
        raise SpecError("the spec must be a YAML mapping of settings", path=source, line=1)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        spec = Spec.model_validate({**data, "base_dir": str(base_dir)})
        if check is not None:
            check(spec)
        return spec
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise SpecError(message, path=source, field=_dotted(loc) or None, line=_line_of(root, loc)) from None
    except SpecError as exc:
        if exc.line is None and exc.field:
            loc = tuple(int(p) if p.isdigit() else p for p in exc.field.replace("]", "").replace("[", ".").split("."))
            raise SpecError(str(exc).removeprefix(f"{exc.field}: "), path=source, field=exc.field,
                            line=_line_of(root, loc)) from None
        raise


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the deepest YAML node on the path `loc`."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
