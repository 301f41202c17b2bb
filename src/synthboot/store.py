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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthboot.errors import RunLockedError, RunNotFoundError, StoreWriteError
from synthboot.secrets import scrub

DB_NAME = "synthboot.db"
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
class Decision:
    candidate_id: int
    kept: bool
    reason: str | None = None
    details: dict[str, Any] | None = None
    score: float | None = None
    matched_id: int | None = None


@dataclass(frozen=True)
class CheckRecord:
    id: int
    real_file: str
    result: dict[str, Any]  # synthboot.check.CheckResult as a dict
    created_at: str


class Store:
    """A run directory's database. Thread-safe: writes are serialised by one lock."""

    def __init__(self, run_dir: str | Path, *, create: bool = False, lock: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not create and not self.path.exists():
            raise RunNotFoundError(f"{self.run_dir} is not a synthboot run (no {DB_NAME} in it)")
        self._lock_file = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if lock:
                self._acquire_run_lock()
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._write_lock = threading.RLock()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from None
        except OSError as exc:
            raise StoreWriteError(f"cannot open the run store at {self.path}: {exc.strerror or exc}") from None

    # -- lifecycle ---------------------------------------------------------------------------
    def _acquire_run_lock(self) -> None:
        self._lock_file = open(self.run_dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            raise RunLockedError(f"{self.run_dir} is in use by {holder}; wait for it to finish or stop it") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"pid {os.getpid()}")
        self._lock_file.flush()

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
                with self.transaction() as conn:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO migrations VALUES (?, ?)", (version, now()))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
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

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._write_lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- meta and spec -----------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def save_spec(self, spec_hash: str, body: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO specs (hash, body, created_at) VALUES (?, ?, ?)",
                         (spec_hash, json.dumps(body), now()))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('spec_hash', ?)", (json.dumps(spec_hash),))

    def latest_spec(self) -> dict[str, Any] | None:
        spec_hash = self.get_meta("spec_hash")
        rows = self.query("SELECT body FROM specs WHERE hash = ?", (spec_hash,))
        return json.loads(rows[0][0]) if rows else None

    # -- LM calls ----------------------------------------------------------------------------
    def find_call(self, key: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM lm_calls WHERE key = ?", (key,))
        return rows[0] if rows else None

    def add_call(self, **row: Any) -> int:
        row.setdefault("created_at", now())
        cols = ", ".join(row)
        # One statement, atomic on its own: every statement here releases the GIL and waits to get
        # it back, which with 32 calls in flight costs more than the statement itself.
        inserted = self._write_one(f"INSERT OR IGNORE INTO lm_calls ({cols}) VALUES ({', '.join('?' * len(row))}) "
                                   "RETURNING id", tuple(row.values()))
        if inserted:
            return inserted[0][0]
        return self.query("SELECT id FROM lm_calls WHERE key = ?", (row["key"],))[0][0]  # stored already

    def add_failure(self, *, purpose: str, task_key: str | None, model: str | None, error: BaseException) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO lm_failures (purpose, task_key, model, error_type, message, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (purpose, task_key, model, type(error).__name__, scrub(str(error))[:2000], now()))

    def add_attempt_failure(self, **row: Any) -> None:
        """One failed attempt of an LM call (see synthboot.lm.failures)."""
        row = {**row, "retried": int(bool(row.get("retried"))), "created_at": now()}
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO lm_attempt_failures ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))

    # -- tasks and candidates ----------------------------------------------------------------
    def done_tasks(self, stage: str) -> set[str]:
        return {r[0] for r in self.query("SELECT key FROM tasks WHERE stage = ? AND status = 'done'", (stage,))}

    def finish_task(self, *, key: str, stage: str, topic: str | None, round: int, call_id: int | None,
                    items: list[dict[str, Any]], model: str | None, temperature: float | None) -> None:
        """Store a generation task's candidates and mark it done, in one transaction."""
        stamp = now()
        with self.transaction() as conn:
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
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, 'failed', NULL, ?, ?)",
                         (key, stage, topic, round, scrub(error)[:2000], now()))

    def add_seeds(self, seeds: list[dict[str, Any]], origin: str = "seed", topic: str | None = None) -> None:
        """Seeds (and imported human examples) are candidates too, keyed by their content."""
        stamp = now()
        with self.transaction() as conn:
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
        rows = self.query(sql + " ORDER BY id", params)
        wanted = set(ids) if ids is not None else None
        return [_candidate(r) for r in rows if wanted is None or r["id"] in wanted]

    # -- decisions ---------------------------------------------------------------------------
    def decisions(self, stage: str) -> dict[int, sqlite3.Row]:
        return {r["candidate_id"]: r for r in self.query("SELECT * FROM decisions WHERE stage = ?", (stage,))}

    def write_decisions(self, stage: str, settings_hash: str, decisions: Iterable[Decision]) -> None:
        stamp = now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(d.candidate_id, stage, settings_hash, int(d.kept), d.reason,
                  None if d.details is None else json.dumps(d.details), d.score, d.matched_id, stamp)
                 for d in decisions])

    # -- splits ------------------------------------------------------------------------------
    def splits(self) -> dict[int, sqlite3.Row]:
        return {r["candidate_id"]: r for r in self.query("SELECT * FROM splits")}

    def write_splits(self, settings_hash: str, assignment: dict[int, str], *, replace_unfrozen: bool) -> None:
        stamp = now()
        with self.transaction() as conn:
            if replace_unfrozen:
                conn.execute("DELETE FROM splits WHERE frozen = 0")
            conn.executemany("INSERT OR REPLACE INTO splits VALUES (?, ?, ?, 0, ?)",
                             [(cid, split, settings_hash, stamp) for cid, split in assignment.items()])

    # -- checks against real data ------------------------------------------------------------
    def add_check(self, real_file: str, result: dict[str, Any]) -> int:
        rows = self._write_one("INSERT INTO checks (real_file, result, created_at) VALUES (?, ?, ?) RETURNING id",
                               (real_file, json.dumps(result), now()))
        return rows[0][0]

    def checks(self) -> list[CheckRecord]:
        """Every stored check, oldest first."""
        return [CheckRecord(r["id"], r["real_file"], json.loads(r["result"]), r["created_at"])
                for r in self.query("SELECT * FROM checks ORDER BY id")]


def _candidate(row: sqlite3.Row) -> Candidate:
    return Candidate(id=row["id"], origin=row["origin"], fields=json.loads(row["fields"]) if row["fields"] else None,
                     topic=row["topic"], round=row["round"], raw=row["raw"], parse_error=row["parse_error"],
                     call_id=row["call_id"], task_key=row["task_key"], item_index=row["item_index"])


def _store_error(exc: sqlite3.Error, path: Path) -> Exception:
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text or "readonly" in text or "unable to open" in text:
        return StoreWriteError(f"cannot write the run store {path}: {text}; free space or fix permissions, "
                               "then run the same command again to resume")
    return exc
