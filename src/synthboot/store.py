"""The run store: one SQLite database per run directory, the single source of truth.

Every LM call, every candidate the LM produced, every stage decision and every split assignment
lives here; nothing is deleted. WAL mode and one transaction per batch make a SIGKILL at any
moment lose at most the work in flight. One writing process at a time holds `run.lock`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from synthboot.errors import RunLockedError, RunNotFoundError, StoreWriteError, SynthbootError
from synthboot.secrets import scrub
from synthboot.spec import Spec

DB_NAME = "synthboot.db"
SUBTOPICS_META = "subtopics"  # meta key of the LM-proposed subtopics (stages.subtopics)
LOCK_NAME = "run.lock"

# Numbered migrations; the applied ones are recorded in `migrations`. Add, never edit.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE specs (
        id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE lm_calls (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,          -- DSPy's request hash: the cache key
        model TEXT, purpose TEXT,
        request TEXT NOT NULL,             -- JSON: messages and parameters (never credentials)
        record BLOB NOT NULL,              -- the response as DSPy caches it
        record_format TEXT NOT NULL,       -- 'json' or 'pickle'
        text TEXT, finish_reason TEXT,
        prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, latency_s REAL,
        created_at TEXT NOT NULL);
    CREATE TABLE lm_failures (
        id INTEGER PRIMARY KEY, purpose TEXT, task_key TEXT, model TEXT,
        error_type TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE tasks (
        key TEXT PRIMARY KEY, stage TEXT NOT NULL, topic TEXT, round INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL, call_id INTEGER, error TEXT, updated_at TEXT NOT NULL);
    CREATE TABLE candidates (
        id INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,              -- 'lm', 'seed' or 'human'
        task_key TEXT, item_index INTEGER, call_id INTEGER REFERENCES lm_calls(id),
        topic TEXT, round INTEGER NOT NULL DEFAULT 0,
        fields TEXT,                       -- JSON object, NULL when the reply did not parse
        raw TEXT, parse_error TEXT,
        model TEXT, temperature REAL, created_at TEXT NOT NULL,
        UNIQUE (task_key, item_index));
    CREATE TABLE decisions (
        candidate_id INTEGER NOT NULL REFERENCES candidates(id), stage TEXT NOT NULL,
        settings_hash TEXT NOT NULL, kept INTEGER NOT NULL, reason TEXT, details TEXT,
        score REAL, matched_id INTEGER, decided_at TEXT NOT NULL,
        PRIMARY KEY (candidate_id, stage));
    CREATE TABLE splits (
        candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id), split TEXT NOT NULL,
        settings_hash TEXT NOT NULL, frozen INTEGER NOT NULL DEFAULT 0, assigned_at TEXT NOT NULL);
    CREATE INDEX decisions_stage ON decisions(stage, kept);
    CREATE INDEX candidates_task ON candidates(task_key);
    """,
}

# Issue 4: the optimize loop (synthboot.optimize). One row per optimize run (keyed by its
# settings, so a re-run replaces its own results), its scores with bootstrap intervals, every
# prediction, the LM calls and tokens of each phase, and the candidates handed to the optimizer
# (the record that test items never reached it).
MIGRATIONS[2] = """
    CREATE TABLE optimize_runs (
        id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, round INTEGER NOT NULL DEFAULT 0,
        settings TEXT NOT NULL,            -- JSON: program, module, optimizer and its settings, metric, lms
        program_path TEXT, status TEXT NOT NULL, error TEXT, created_at TEXT NOT NULL, finished_at TEXT);
    CREATE TABLE optimize_scores (
        run_id INTEGER NOT NULL REFERENCES optimize_runs(id), split TEXT NOT NULL, program TEXT NOT NULL,
        n INTEGER NOT NULL, mean REAL, ci_low REAL, ci_high REAL,
        PRIMARY KEY (run_id, split, program));
    CREATE TABLE optimize_predictions (
        run_id INTEGER NOT NULL REFERENCES optimize_runs(id), split TEXT NOT NULL, program TEXT NOT NULL,
        candidate_id INTEGER NOT NULL REFERENCES candidates(id), prediction TEXT, score REAL, error TEXT,
        PRIMARY KEY (run_id, split, program, candidate_id));
    CREATE TABLE optimize_phases (
        run_id INTEGER NOT NULL REFERENCES optimize_runs(id), phase TEXT NOT NULL, calls INTEGER NOT NULL,
        calls_made INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        seconds REAL NOT NULL, PRIMARY KEY (run_id, phase));
    CREATE TABLE optimize_inputs (
        run_id INTEGER NOT NULL REFERENCES optimize_runs(id), role TEXT NOT NULL,
        candidate_id INTEGER NOT NULL REFERENCES candidates(id), PRIMARY KEY (run_id, role, candidate_id));
"""

# Issue 5: human review decisions (synthboot.reviews). Every decision is kept as history; the
# latest per candidate is the one in force, and it outranks the automatic filters.
MIGRATIONS[3] = """
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY,
        candidate_id INTEGER NOT NULL REFERENCES candidates(id),
        decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'edit')),
        fields TEXT,                       -- JSON object: the edited example (decision 'edit')
        reviewer TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL);
    CREATE INDEX reviews_candidate ON reviews(candidate_id, id);
"""

# Issue 7: every failed LM attempt, retried or final (synthboot.lm.failures), keyed by the call's
# cache key: what happened to each call, not only how it ended.
MIGRATIONS[5] = """
    CREATE TABLE lm_attempt_failures (
        id INTEGER PRIMARY KEY, call_key TEXT, purpose TEXT, model TEXT, attempt INTEGER NOT NULL,
        error_type TEXT NOT NULL, status INTEGER, message TEXT NOT NULL, retry_after REAL, delay_s REAL,
        retried INTEGER NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX lm_attempt_failures_key ON lm_attempt_failures(call_key);
"""

# Issue 11: checks of a run against real labelled rows (synthboot.check): one row per check, the
# result as JSON, kept as history (the latest per file is the one the report shows).
MIGRATIONS[8] = """
    CREATE TABLE checks (
        id INTEGER PRIMARY KEY, real_file TEXT NOT NULL, result TEXT NOT NULL, created_at TEXT NOT NULL);
"""


# Issue 13: documents as a source (synthboot.sources). Each chunk of each document, keyed by its
# place and its text's hash; `current` marks the chunks of the latest read of the sources (a
# changed document's old chunks stay, like every other row). `chunk_tasks` says which chunks (in
# hop order) and which question type each grounded generation task was given. Numbered 13 after
# the issue, so migrations other branches add below it cannot collide.
MIGRATIONS[13] = """
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY, hash TEXT NOT NULL, document TEXT NOT NULL, position INTEGER NOT NULL,
        heading TEXT NOT NULL, text TEXT NOT NULL, tokens INTEGER NOT NULL,
        current INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,
        UNIQUE (document, position, hash));
    CREATE INDEX chunks_hash ON chunks(hash);
    CREATE TABLE chunk_tasks (
        task_key TEXT NOT NULL, hop INTEGER NOT NULL, chunk_hash TEXT NOT NULL, question_type TEXT NOT NULL,
        PRIMARY KEY (task_key, hop));
"""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Candidate:
    id: int
    origin: str
    fields: dict[str, Any] | None
    topic: str | None
    round: int
    raw: str | None = None
    parse_error: str | None = None
    call_id: int | None = None
    task_key: str | None = None
    item_index: int | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document (synthboot.sources): its place, heading path, text and hash."""

    document: str
    position: int
    heading: str
    text: str
    hash: str
    tokens: int


@dataclass(frozen=True)
class Decision:
    candidate_id: int
    kept: bool
    reason: str | None = None
    details: dict[str, Any] | None = None
    score: float | None = None
    matched_id: int | None = None


@dataclass(frozen=True)
class StoredDecision:
    """A stage's decision on one candidate, as stored (with the settings hash it was made under)."""

    candidate_id: int
    stage: str
    settings_hash: str
    kept: bool
    reason: str | None
    details: dict[str, Any] | None
    score: float | None
    matched_id: int | None
    decided_at: str


@dataclass(frozen=True)
class SplitRow:
    """A candidate's split assignment; `frozen` ones (seen by an optimizer, imported human rows) stay put."""

    candidate_id: int
    split: str
    settings_hash: str
    frozen: bool
    assigned_at: str


@dataclass(frozen=True)
class Review:
    """A human review decision (migration 3); the latest one per candidate is in force."""

    id: int
    candidate_id: int
    decision: str
    fields: dict[str, Any] | None
    reviewer: str
    note: str | None
    created_at: str

    @property
    def keeps(self) -> bool:
        return self.decision in ("accept", "edit")


@dataclass(frozen=True)
class CallTotals:
    """Sums over a group of stored LM calls (`name` is the group: a purpose, a model, or None for all)."""

    name: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost: float  # the priced calls' cost
    unpriced_calls: int  # calls whose price is unknown: `cost` leaves them out

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class StoredCall:
    """A stored LM response, as the response cache (synthboot.lm.calls) reads it back."""

    id: int
    text: str | None
    finish_reason: str | None
    record: str | bytes  # the response as DSPy caches it: JSON text, or a pickle
    record_format: str  # 'json' or 'pickle'


@dataclass(frozen=True)
class OptimizeRunRow:
    id: int
    key: str
    round: int
    settings: dict[str, Any]
    program_path: str | None
    status: str
    error: str | None
    finished_at: str | None


@dataclass(frozen=True)
class ScoreRow:
    split: str
    program: str
    n: int
    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PhaseRow:
    phase: str
    calls: int
    calls_made: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class PredictionRow:
    split: str
    program: str
    candidate_id: int
    prediction: str | None  # JSON
    score: float | None
    error: str | None


@dataclass(frozen=True)
class CheckRecord:
    id: int
    real_file: str
    result: dict[str, Any]  # synthboot.check.CheckResult as a dict
    created_at: str


class Store:
    """A run directory's database. Thread-safe: writes are serialised by one lock."""

    def __init__(self, run_dir: str | Path, *, create: bool = False, lock: bool = False, readonly: bool = False):
        """`readonly`: for commands that only read (see `_open_readonly`); not with `create` or `lock`."""
        if readonly and (create or lock):
            raise ValueError("a read-only store cannot be created or locked")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not create and not self.path.exists():
            raise RunNotFoundError(f"{self.run_dir} is not a synthboot run (no {DB_NAME} in it)")
        self._lock_file: TextIO | None = None
        if readonly and self._open_readonly():
            return
        self._write_lock = threading.RLock()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if lock:
                self._acquire_run_lock()
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from None
        except OSError as exc:
            raise StoreWriteError(f"cannot open the run store at {self.path}: {exc.strerror or exc}") from None

    def _open_readonly(self) -> bool:
        """For commands that only read (status, report, export): no lock, no migration, no write,
        so they work on a run directory the user cannot write (a shared or archived run).

        False (nothing opened) when the store needs a migration and can be written: it is then
        opened as usual, which migrates it."""
        self._write_lock = threading.RLock()
        # A WAL database opens read-only when its -shm file exists or can be created; in a read-only
        # directory with neither, `immutable` reads the file as it is (nobody can be writing it).
        writable = os.access(self.run_dir, os.W_OK)
        shm = self.path.with_name(DB_NAME + "-shm").exists()
        uri = f"{self.path.resolve().as_uri()}?mode=ro" + ("" if writable or shm else "&immutable=1")
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.row_factory = sqlite3.Row
            applied = {r[0] for r in self._conn.execute("SELECT version FROM migrations")}
        except sqlite3.Error as exc:
            raise StoreWriteError(f"cannot read the run store {self.path}: {exc}") from None
        if set(MIGRATIONS) <= applied:
            return True
        self._conn.close()
        if writable:
            return False
        raise StoreWriteError(f"the run store {self.path} was made by an older synthboot and this read-only copy "
                              "cannot be upgraded; open it once where it can be written")

    # -- lifecycle ---------------------------------------------------------------------------
    def _acquire_run_lock(self) -> None:
        lock_file = open(self.run_dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise RunLockedError(f"{self.run_dir} is in use by {holder}; wait for it to finish or stop it") from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()}")
        lock_file.flush()
        self._lock_file = lock_file

    def close(self) -> None:
        # Under the write lock: a worker still finishing a transaction (after Ctrl-C) commits first.
        with self._write_lock:
            self._conn.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._write_lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
            applied = {r[0] for r in self._conn.execute("SELECT version FROM migrations")}
            for version, script in sorted(MIGRATIONS.items()):
                if version in applied:
                    continue
                with self._transaction() as conn:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO migrations VALUES (?, ?)", (version, now()))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; a full disk or a read-only store becomes a `StoreWriteError`."""
        with self._write_lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise _store_error(exc, self.path) from None

    def _write_one(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """One write statement in its own (implicit) transaction; errors as in `transaction`."""
        with self._write_lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path) from None

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._write_lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- meta and spec -----------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def subtopics(self) -> list[str] | None:
        """The subtopics the LM proposed for this run, if it did (stages.subtopics writes them).

        Here rather than there so that `status` reads them without importing DSPy."""
        entry = self.get_meta(SUBTOPICS_META)
        return list(entry["topics"]) if entry else None

    def save_spec(self, spec_hash: str, body: dict[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO specs (hash, body, created_at) VALUES (?, ?, ?)",
                         (spec_hash, json.dumps(body), now()))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('spec_hash', ?)", (json.dumps(spec_hash),))

    def latest_spec(self) -> dict[str, Any] | None:
        """The latest spec's body as saved (JSON), or None before the first run."""
        spec_hash = self.get_meta("spec_hash")
        rows = self._query("SELECT body FROM specs WHERE hash = ?", (spec_hash,))
        return json.loads(rows[0][0]) if rows else None

    def find_spec(self) -> Spec | None:
        body = self.latest_spec()
        return None if body is None else Spec.model_validate(body)

    def spec(self) -> Spec:
        """The spec the run was last made with; a clear error before the first run."""
        spec = self.find_spec()
        if spec is None:
            raise SynthbootError(f"{self.run_dir} has no spec yet: run `synthboot run` first")
        return spec

    # -- LM calls ----------------------------------------------------------------------------
    def add_call(self, **row: Any) -> int:
        row.setdefault("created_at", now())
        cols = ", ".join(row)
        # One statement, atomic on its own: every statement here releases the GIL and waits to get
        # it back, which with 32 calls in flight costs more than the statement itself.
        inserted = self._write_one(f"INSERT OR IGNORE INTO lm_calls ({cols}) VALUES ({', '.join('?' * len(row))}) "
                                   "RETURNING id", tuple(row.values()))
        if inserted:
            return inserted[0][0]
        return self._query("SELECT id FROM lm_calls WHERE key = ?", (row["key"],))[0][0]  # stored already

    def add_failure(self, *, purpose: str, task_key: str | None, model: str | None, error: BaseException) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO lm_failures (purpose, task_key, model, error_type, message, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (purpose, task_key, model, type(error).__name__, scrub(str(error))[:2000], now()))

    def add_attempt_failure(self, **row: Any) -> None:
        """One failed attempt of an LM call (see synthboot.lm.failures)."""
        row = {**row, "retried": int(bool(row.get("retried"))), "created_at": now()}
        with self._transaction() as conn:
            conn.execute(f"INSERT INTO lm_attempt_failures ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))

    # -- tasks and candidates ----------------------------------------------------------------
    def failed_task_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM tasks WHERE status = 'failed'")[0][0])

    def task_keys(self, like: str = "%") -> list[str]:
        """Generation task keys matching a SQL LIKE pattern, in key order."""
        return [r[0] for r in self._query("SELECT key FROM tasks WHERE key LIKE ? ORDER BY key", (like,))]

    def done_tasks(self, stage: str) -> set[str]:
        return {r[0] for r in self._query("SELECT key FROM tasks WHERE stage = ? AND status = 'done'", (stage,))}

    def finish_task(self, *, key: str, stage: str, topic: str | None, round: int, call_id: int | None,
                    items: list[dict[str, Any]], model: str | None, temperature: float | None) -> None:
        """Store a generation task's candidates and mark it done, in one transaction."""
        stamp = now()
        with self._transaction() as conn:
            for index, item in enumerate(items):
                conn.execute(
                    "INSERT OR IGNORE INTO candidates (origin, task_key, item_index, call_id, topic, round, fields,"
                    " raw, parse_error, model, temperature, created_at) VALUES ('lm', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, index, call_id, topic, round,
                     None if item.get("fields") is None else json.dumps(item["fields"]),
                     item.get("raw"), item.get("parse_error"), model, temperature, stamp))
            conn.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, 'done', ?, NULL, ?)",
                         (key, stage, topic, round, call_id, stamp))

    def fail_task(self, *, key: str, stage: str, topic: str | None, round: int, error: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, 'failed', NULL, ?, ?)",
                         (key, stage, topic, round, scrub(error)[:2000], now()))

    def add_seeds(self, seeds: list[dict[str, Any]], origin: str = "seed", topic: str | None = None) -> None:
        """Seeds (and imported human examples) are candidates too, keyed by their content."""
        stamp = now()
        with self._transaction() as conn:
            for item in seeds:
                body = json.dumps(item, sort_keys=True)
                conn.execute(
                    "INSERT OR IGNORE INTO candidates (origin, task_key, item_index, topic, fields, created_at)"
                    " VALUES (?, ?, 0, ?, ?, ?)",
                    (origin, f"{origin}:{body}", topic or item.get("topic"), json.dumps(item), stamp))

    def candidates(self, *, origin: str | None = None, ids: Iterable[int] | None = None) -> list[Candidate]:
        sql, params = "SELECT * FROM candidates", []
        if origin is not None:
            sql += " WHERE origin = ?"
            params.append(origin)
        rows = self._query(sql + " ORDER BY id", params)
        wanted = set(ids) if ids is not None else None
        return [_candidate(r) for r in rows if wanted is None or r["id"] in wanted]

    # -- decisions ---------------------------------------------------------------------------
    def decisions(self, stage: str) -> dict[int, StoredDecision]:
        return {r["candidate_id"]: _decision(r) for r in self._query("SELECT * FROM decisions WHERE stage = ?", (stage,))}

    def write_decisions(self, stage: str, settings_hash: str, decisions: Iterable[Decision]) -> None:
        stamp = now()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(d.candidate_id, stage, settings_hash, int(d.kept), d.reason,
                  None if d.details is None else json.dumps(d.details), d.score, d.matched_id, stamp)
                 for d in decisions])

    # -- splits ------------------------------------------------------------------------------
    def splits(self) -> dict[int, SplitRow]:
        """Every stored split row, frozen ones included (membership: synthboot.view)."""
        return {r["candidate_id"]: SplitRow(r["candidate_id"], r["split"], r["settings_hash"], bool(r["frozen"]),
                                            r["assigned_at"])
                for r in self._query("SELECT * FROM splits")}

    def write_splits(self, settings_hash: str, assignment: dict[int, str], *, replace_unfrozen: bool = False,
                     frozen: bool = False) -> None:
        """Store assignments; `replace_unfrozen` drops every unfrozen row first (a re-split)."""
        stamp = now()
        with self._transaction() as conn:
            if replace_unfrozen:
                conn.execute("DELETE FROM splits WHERE frozen = 0")
            conn.executemany("INSERT OR REPLACE INTO splits VALUES (?, ?, ?, ?, ?)",
                             [(cid, split, settings_hash, int(frozen), stamp) for cid, split in assignment.items()])

    def freeze(self, split: str | None = None) -> int:
        """Freeze the unfrozen rows (of `split`, or all): a re-split keeps them. Returns how many."""
        with self._transaction() as conn:
            if split is None:
                return conn.execute("UPDATE splits SET frozen = 1 WHERE frozen = 0").rowcount
            return conn.execute("UPDATE splits SET frozen = 1 WHERE split = ? AND frozen = 0", (split,)).rowcount

    # -- reviews -----------------------------------------------------------------------------
    def add_review(self, candidate_id: int, decision: str, *, fields: dict[str, Any] | None, reviewer: str,
                   note: str | None) -> Review:
        with self._transaction() as conn:
            review_id = _rowid(conn.execute(
                "INSERT INTO reviews (candidate_id, decision, fields, reviewer, note, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (candidate_id, decision, None if fields is None else json.dumps(fields), reviewer, note, now())))
        return _review(self._query("SELECT * FROM reviews WHERE id = ?", (review_id,))[0])

    def latest_reviews(self) -> dict[int, Review]:
        """Candidate id -> the review decision in force (the latest one)."""
        rows = self._query("SELECT * FROM reviews WHERE id IN (SELECT MAX(id) FROM reviews GROUP BY candidate_id)")
        return {r["candidate_id"]: _review(r) for r in rows}

    def review_history(self, candidate_id: int) -> list[Review]:
        return [_review(r) for r in self._query("SELECT * FROM reviews WHERE candidate_id = ? ORDER BY id",
                                                (candidate_id,))]

    # -- call statistics ---------------------------------------------------------------------
    def call_totals(self, by: Literal["purpose", "model"] | None = None,
                    ids: Collection[int] | None = None) -> list[CallTotals]:
        """The one aggregation over `lm_calls`: sums of all calls (one row), or per purpose or model
        (a missing one is 'other'), most calls first; `ids` restricts it to those calls."""
        group = {None: "NULL", "purpose": "COALESCE(purpose, 'other')", "model": "COALESCE(model, 'other')"}[by]
        where, params = "", list(ids or ())
        if ids is not None:
            where = f" WHERE id IN ({', '.join('?' * len(params))})" if params else " WHERE 0"
        tail = "" if by is None else " GROUP BY 1 ORDER BY 2 DESC, 1"
        rows = self._query(
            f"SELECT {group}, COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
            " COALESCE(SUM(latency_s), 0), COALESCE(SUM(cost), 0), COALESCE(SUM(cost IS NULL), 0)"
            f" FROM lm_calls{where}{tail}", params)
        return [CallTotals(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]), int(r[6])) for r in rows]

    def call_keys(self) -> set[str]:
        return {r[0] for r in self._query("SELECT key FROM lm_calls")}

    def find_call(self, key: str) -> StoredCall | None:
        """The stored response to a request (by its cache key), or None."""
        rows = self._query("SELECT id, text, finish_reason, record, record_format FROM lm_calls WHERE key = ?", (key,))
        return StoredCall(*rows[0]) if rows else None

    def failure_counts(self, by: Literal["purpose", "model"] | None = None) -> dict[str | None, int]:
        """Final LM call failures (`lm_failures`): the total under None, or per purpose or model."""
        group = {None: "NULL", "purpose": "COALESCE(purpose, 'other')", "model": "COALESCE(model, 'other')"}[by]
        return {r[0]: int(r[1]) for r in self._query(f"SELECT {group}, COUNT(*) FROM lm_failures GROUP BY 1")} \
            or ({None: 0} if by is None else {})

    def attempt_failure_counts(self, *, retried_only: bool = False) -> dict[str, int]:
        """Failed attempts (retried or final) by error type."""
        where = " WHERE retried = 1" if retried_only else ""
        return {r[0]: int(r[1]) for r in self._query(
            f"SELECT error_type, COUNT(*) FROM lm_attempt_failures{where} GROUP BY error_type")}

    def attempt_failures_by_call(self) -> list[tuple[str | None, str, int]]:
        """(call key, error type, failed attempts)."""
        return [(r[0], r[1], int(r[2])) for r in self._query(
            "SELECT call_key, error_type, COUNT(*) FROM lm_attempt_failures GROUP BY call_key, error_type")]

    # -- optimize runs (migration 2) ---------------------------------------------------------
    def start_optimize_run(self, key: str, round_: int, settings: dict[str, Any]) -> int:
        """The run's row, created or reset: a re-run with the same settings and data replaces its results."""
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM optimize_runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                return _rowid(conn.execute("INSERT INTO optimize_runs (key, round, settings, status, created_at) "
                                           "VALUES (?, ?, ?, 'running', ?)",
                                           (key, round_, json.dumps(settings, default=str), now())))
            run_id = int(row[0])
            for table in ("optimize_scores", "optimize_predictions", "optimize_phases", "optimize_inputs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            conn.execute("UPDATE optimize_runs SET status = 'running', error = NULL, created_at = ? WHERE id = ?",
                         (now(), run_id))
            return run_id

    def record_optimize_inputs(self, run_id: int, roles: dict[str, list[int]]) -> None:
        """The candidates handed to the optimizer, by role (trainset, valset)."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO optimize_inputs VALUES (?, ?, ?)",
                             [(run_id, role, cid) for role, ids in roles.items() for cid in ids])

    def optimize_inputs(self, run_id: int) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for r in self._query("SELECT role, candidate_id FROM optimize_inputs WHERE run_id = ? ORDER BY 1, 2",
                             (run_id,)):
            out.setdefault(r[0], []).append(r[1])
        return out

    def fail_optimize_run(self, run_id: int, error: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE optimize_runs SET status = 'failed', error = ? WHERE id = ?", (error[:2000], run_id))

    def finish_optimize_run(self, run_id: int, program_path: str | None, predictions: list[PredictionRow],
                            scores: list[ScoreRow], phases: list[PhaseRow]) -> None:
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO optimize_predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(run_id, p.split, p.program, p.candidate_id, p.prediction, p.score, p.error)
                              for p in predictions])
            conn.executemany("INSERT OR REPLACE INTO optimize_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(run_id, s.split, s.program, s.n, s.mean, s.ci_low, s.ci_high) for s in scores])
            conn.executemany("INSERT OR REPLACE INTO optimize_phases VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(run_id, p.phase, p.calls, p.calls_made, p.prompt_tokens, p.completion_tokens,
                               p.seconds) for p in phases])
            conn.execute("UPDATE optimize_runs SET status = 'done', program_path = ?, finished_at = ? WHERE id = ?",
                         (program_path, now(), run_id))

    def optimize_runs(self, status: str = "done") -> list[OptimizeRunRow]:
        """Optimize runs with that status, oldest finished first."""
        return [OptimizeRunRow(r["id"], r["key"], r["round"], json.loads(r["settings"]), r["program_path"],
                               r["status"], r["error"], r["finished_at"])
                for r in self._query("SELECT * FROM optimize_runs WHERE status = ? ORDER BY finished_at, id",
                                     (status,))]

    def optimize_scores(self, run_id: int) -> list[ScoreRow]:
        return [ScoreRow(r["split"], r["program"], r["n"], r["mean"], r["ci_low"], r["ci_high"])
                for r in self._query("SELECT * FROM optimize_scores WHERE run_id = ?", (run_id,))]

    def optimize_phases(self, run_id: int) -> list[PhaseRow]:
        return [PhaseRow(r["phase"], r["calls"], r["calls_made"], r["prompt_tokens"], r["completion_tokens"],
                         r["seconds"])
                for r in self._query("SELECT * FROM optimize_phases WHERE run_id = ?", (run_id,))]

    def optimize_predictions(self, run_id: int, split: str | None = None) -> list[PredictionRow]:
        sql = "SELECT * FROM optimize_predictions WHERE run_id = ?"
        params: list[Any] = [run_id]
        if split is not None:
            sql += " AND split = ?"
            params.append(split)
        return [PredictionRow(r["split"], r["program"], r["candidate_id"], r["prediction"], r["score"], r["error"])
                for r in self._query(sql + " ORDER BY candidate_id", params)]

    # -- checks against real data ------------------------------------------------------------
    def add_check(self, real_file: str, result: dict[str, Any]) -> int:
        rows = self._write_one("INSERT INTO checks (real_file, result, created_at) VALUES (?, ?, ?) RETURNING id",
                               (real_file, json.dumps(result), now()))
        return rows[0][0]

    def checks(self) -> list[CheckRecord]:
        """Every stored check, oldest first."""
        return [CheckRecord(r["id"], r["real_file"], json.loads(r["result"]), r["created_at"])
                for r in self._query("SELECT * FROM checks ORDER BY id")]


    def add_optimize_score(self, run_id: int, split: str, program: str, n: int, mean: float, low: float,
                           high: float) -> None:
        """One more score of an optimize run (the `rag` program's retrieval recall, say)."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO optimize_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (run_id, split, program, n, mean, low, high))

    # -- source chunks (issue 13) ---------------------------------------------------------------
    def sync_chunks(self, chunks: Iterable[Chunk]) -> None:
        """Record the latest read of the sources: these chunks are current, every other one is not."""
        stamp = now()
        with self._transaction() as conn:
            conn.execute("UPDATE chunks SET current = 0")
            conn.executemany(
                "INSERT INTO chunks (hash, document, position, heading, text, tokens, current, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (document, position, hash) DO UPDATE SET current = 1",
                [(c.hash, c.document, c.position, c.heading, c.text, c.tokens, stamp) for c in chunks])

    def chunks(self, *, current: bool = True) -> list[Chunk]:
        """The chunks of the latest read of the sources (or every chunk ever read), in document order."""
        rows = self._query("SELECT * FROM chunks" + (" WHERE current = 1" if current else "")
                          + " ORDER BY document, position, id")
        return [Chunk(r["document"], r["position"], r["heading"], r["text"], r["hash"], r["tokens"]) for r in rows]

    def link_task_chunks(self, links: Iterable[tuple[str, list[str], str]]) -> None:
        """(task key, chunk hashes in hop order, question type) for planned grounded tasks."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO chunk_tasks VALUES (?, ?, ?, ?)",
                             [(key, hop, h, qtype) for key, hashes, qtype in links for hop, h in enumerate(hashes)])

    def candidate_chunks(self) -> dict[int, tuple[str, list[str]]]:
        """Each grounded candidate's id -> (question type, the hashes of the chunks it was given)."""
        out: dict[int, tuple[str, list[str]]] = {}
        for r in self._query("SELECT c.id, t.question_type, t.chunk_hash FROM candidates c"
                            " JOIN chunk_tasks t ON t.task_key = c.task_key ORDER BY c.id, t.hop"):
            out.setdefault(r[0], (r[1], []))[1].append(r[2])
        return out

    def candidate_documents(self) -> dict[int, str]:
        """Each grounded candidate's id -> the document its first chunk came from."""
        rows = self._query("SELECT c.id, MIN(k.document) FROM candidates c"
                          " JOIN chunk_tasks t ON t.task_key = c.task_key AND t.hop = 0"
                          " JOIN chunks k ON k.hash = t.chunk_hash GROUP BY c.id")
        return {r[0]: r[1] for r in rows}


def lock_holder(run_dir: str | Path) -> str | None:
    """Who holds the run's lock ('pid N'), or None when no process is running on it."""
    try:
        with open(Path(run_dir) / LOCK_NAME) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return fh.read().strip() or "another process"
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:  # no lock file: nothing ever ran here, or it cannot be read
        return None
    return None


def _candidate(row: sqlite3.Row) -> Candidate:
    return Candidate(id=row["id"], origin=row["origin"], fields=json.loads(row["fields"]) if row["fields"] else None,
                     topic=row["topic"], round=row["round"], raw=row["raw"], parse_error=row["parse_error"],
                     call_id=row["call_id"], task_key=row["task_key"], item_index=row["item_index"])


def _rowid(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None  # an INSERT's
    return cursor.lastrowid


def _decision(row: sqlite3.Row) -> StoredDecision:
    return StoredDecision(candidate_id=row["candidate_id"], stage=row["stage"], settings_hash=row["settings_hash"],
                          kept=bool(row["kept"]), reason=row["reason"],
                          details=json.loads(row["details"]) if row["details"] else None, score=row["score"],
                          matched_id=row["matched_id"], decided_at=row["decided_at"])


def _review(row: sqlite3.Row) -> Review:
    return Review(id=row["id"], candidate_id=row["candidate_id"], decision=row["decision"],
                  fields=json.loads(row["fields"]) if row["fields"] else None, reviewer=row["reviewer"],
                  note=row["note"], created_at=row["created_at"])


def _store_error(exc: sqlite3.Error, path: Path) -> Exception:
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text or "readonly" in text or "unable to open" in text:
        return StoreWriteError(f"cannot write the run store {path}: {text}; free space or fix permissions, "
                               "then run the same command again to resume")
    return exc
