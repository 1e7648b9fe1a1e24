"""The store of a study: SQLite (stdlib), one row per fit, committed as each fit finishes.

Nothing else in bayescmoe touches SQL.  A row is keyed by the setting's digest, the start
method, the study seed, ``n`` and the replication; running a study again skips the keys it
finds, so an interrupted study resumes where it stopped, and a ``kill -9`` loses at most the
fits in flight (each commit is durable before the next fit is recorded).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bayescmoe.exceptions import BayescmoeError
from bayescmoe.model.spec import Spec

__all__ = ["Store", "StoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS specs (
    spec_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fits (
    spec_hash TEXT NOT NULL,
    init TEXT NOT NULL,
    study_seed INTEGER NOT NULL,
    n INTEGER NOT NULL,
    rep INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    converged INTEGER NOT NULL,
    at_bound INTEGER NOT NULL,
    n_iter INTEGER NOT NULL,
    seconds REAL NOT NULL,
    loglik REAL,
    losses TEXT NOT NULL,
    params TEXT NOT NULL,
    error TEXT,
    recorded TEXT NOT NULL,
    PRIMARY KEY (spec_hash, init, study_seed, n, rep)
);
"""

_COLUMNS = (
    "spec_hash",
    "init",
    "study_seed",
    "n",
    "rep",
    "seed",
    "status",
    "converged",
    "at_bound",
    "n_iter",
    "seconds",
    "loglik",
    "losses",
    "params",
    "error",
    "recorded",
)


class StoreError(BayescmoeError):
    """The store file cannot be opened or is not a bayescmoe store."""


class Store:
    """A study store in one SQLite file (created if missing).

    Parameters
    ----------
    path : str or Path
        The file; ``":memory:"`` for a store that lives as long as the object.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0)
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot use {self.path!r} as a study store: {err}; give a new file name") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, spec: Spec) -> str:
        """Record the spec (so the store describes itself) and return its digest."""
        digest = spec.digest()
        self._db.execute(
            "INSERT OR IGNORE INTO specs VALUES (?, ?, ?)",
            (digest, spec.name, json.dumps(spec.to_dict(), sort_keys=True)),
        )
        self._db.commit()
        return digest

    def done(self, spec_hash: str, init: str, study_seed: int) -> set[tuple[int, int]]:
        """The (n, rep) pairs already recorded for this study."""
        cur = self._db.execute(
            "SELECT n, rep FROM fits WHERE spec_hash = ? AND init = ? AND study_seed = ?", (spec_hash, init, study_seed)
        )
        return set(cur.fetchall())

    def add(self, row: dict[str, Any]) -> None:
        """Insert one fit and commit it."""
        record = dict(
            row,
            losses=json.dumps(row["losses"]),
            params=json.dumps(row["params"]),
            recorded=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        self._db.execute(
            f"INSERT OR REPLACE INTO fits VALUES ({', '.join('?' * len(_COLUMNS))})",
            tuple(record.get(c) for c in _COLUMNS),
        )
        self._db.commit()

    def rows(self, spec_hash: str, init: str, study_seed: int) -> list[dict[str, Any]]:
        """Every recorded fit of the study, sorted by (n, rep), losses and params decoded."""
        cur = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM fits WHERE spec_hash = ? AND init = ? AND study_seed = ? "
            "ORDER BY n, rep",
            (spec_hash, init, study_seed),
        )
        out = []
        for values in cur.fetchall():
            row = dict(zip(_COLUMNS, values))
            row["losses"], row["params"] = json.loads(row["losses"]), json.loads(row["params"])
            row["converged"], row["at_bound"] = bool(row["converged"]), bool(row["at_bound"])
            out.append(row)
        return out
