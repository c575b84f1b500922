"""The app's persistent job queue: one SQLite file in the work folder (``jobs.sqlite``).

A job is a row: an unguessable id (``secrets.token_urlsafe``, 192 bits), its kind (``create``,
``express``, ``animate``, ``drive``), its owner (the logged-in user, or the browser session), its
state and its parameters (JSON). Its files live in ``WORK/jobs/<id>/`` (``inputs/`` and ``out/``).

States: ``queued`` → ``running`` → ``done`` | ``failed``; ``cancelled`` from queued or running.
A server that stops (or dies) leaves its running jobs ``running``; the next start puts them back
in the queue (``requeue_unfinished``) and the worker continues them with the pipeline's own resume
(``api.run_state`` finds the checkpoint).

Fair queueing (``claim``): the next job goes to the owner with the fewest running jobs, then the
one served least recently, then the oldest job; one user's ten jobs never hold another's first
job behind them. SQLite (Python's ``sqlite3``) does the storage and the locking; the write-ahead
log lets status reads run while a worker's state change is written.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

DB_NAME = "jobs.sqlite"
JOBS_FOLDER = "jobs"
ID_BYTES = 24  # 192 random bits → 32 URL-safe characters
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JobKind = Literal["create", "express", "animate", "drive"]
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, kind);
"""


@dataclass(frozen=True)
class Job:
    """One row of the queue (see the module docstring for the fields)."""

    id: str
    kind: str
    owner: str
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    error: str | None = None
    worker: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def new_job_id() -> str:
    """An unguessable job id (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(ID_BYTES)


def valid_job_id(text: str | None) -> bool:
    return bool(text) and bool(ID_PATTERN.match(str(text)))


class JobStore:
    """The queue in ``work_dir/jobs.sqlite``; safe to use from several threads and processes
    (each call opens its own short connection)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / JOBS_FOLDER).mkdir(exist_ok=True)
        self.path = self.work_dir / DB_NAME
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as db:
            db.row_factory = sqlite3.Row
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def job_dir(self, job_id: str) -> Path:
        """``WORK/jobs/<id>`` (the id is checked, so this never leaves the work folder)."""
        if not valid_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.work_dir / JOBS_FOLDER / job_id

    # ------------------------------------------------------------------ writing
    def add(self, kind: JobKind, owner: str, params: dict[str, Any], job_id: str | None = None) -> Job:
        """Queue a new job (its folder must already hold its inputs)."""
        job_id = job_id or new_job_id()
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (id, kind, owner, state, params, created) VALUES (?, ?, ?, 'queued', ?, ?)",
                       (job_id, kind, owner, json.dumps(params), time.time()))
        return self.get(job_id)  # type: ignore[return-value]

    def claim(self, kinds: Iterable[str], worker: str) -> Job | None:
        """Mark the fairest queued job of ``kinds`` running on ``worker`` and return it (None: nothing queued)."""
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        with self._transaction() as db:
            queued = db.execute(f"SELECT * FROM jobs WHERE state = 'queued' AND kind IN ({marks}) "
                                "ORDER BY created, rowid", kinds).fetchall()
            if not queued:
                return None
            running = dict(db.execute("SELECT owner, COUNT(*) FROM jobs WHERE state = 'running' GROUP BY owner").fetchall())
            served = dict(db.execute("SELECT owner, MAX(started) FROM jobs WHERE started IS NOT NULL GROUP BY owner").fetchall())
            order = {row["id"]: k for k, row in enumerate(queued)}
            row = min(queued, key=lambda r: (running.get(r["owner"], 0), served.get(r["owner"]) or 0.0, order[r["id"]]))
            db.execute("UPDATE jobs SET state = 'running', started = ?, worker = ?, attempts = attempts + 1 "
                       "WHERE id = ?", (time.time(), worker, row["id"]))
        return self.get(row["id"])

    def finish(self, job_id: str, state: JobState, error: str | None = None) -> None:
        """Record a running job's end (a job cancelled meanwhile stays cancelled)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ?, finished = ?, error = ? WHERE id = ? AND state = 'running'",
                       (state, time.time(), error, job_id))

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job; returns the job as it was before (None if unknown)."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["state"] in ("queued", "running"):
                db.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ?", (time.time(), job_id))
        return _job(row)

    def requeue(self, job_id: str) -> None:
        """A running job goes back to the queue (its worker stopped with the server)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued', worker = NULL WHERE id = ? AND state = 'running'", (job_id,))

    def requeue_unfinished(self) -> list[str]:
        """At start-up: every job left running by a previous server goes back to the queue."""
        with self._transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state = 'running'").fetchall()]
            db.execute("UPDATE jobs SET state = 'queued', worker = NULL WHERE state = 'running'")
        return ids

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str) -> Job | None:
        if not valid_job_id(job_id):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, kind: str | None = None, state: str | None = None, owner: str | None = None) -> list[Job]:
        """Jobs, newest first, filtered by kind / state / owner when given."""
        clauses, values = [], []
        for column, value in (("kind", kind), ("state", state), ("owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM jobs {where} ORDER BY created DESC, rowid DESC", values).fetchall()
        return [_job(r) for r in rows]

    def position(self, job: Job) -> int:
        """How many queued jobs of the same kind were queued before this one (0 = next)."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND kind = ? AND created < ?",
                                  (job.kind, job.created)).fetchone()[0])


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    return Job(**data)
