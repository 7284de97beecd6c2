"""The run database: SQLite in WAL mode, numbered migrations, the queries `symdisc runs` uses.

The schema is a public interface (documented in docs/schema.md). Migrations are append-only: each is
applied once, in order, inside a transaction, and recorded in ``_migrations``. A database written
by a newer symdisc (a migration number this version does not know) is refused, not guessed at.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Iterable, Optional

from symdisc.contract import FIDELITY, OPERATORS, ORIGINS, REASONS, STAGES, STATUSES  # noqa: F401 (FIDELITY re-exported)
from symdisc.errors import StoreError, UsageError
from symdisc.resources import symdisc_home

# Append-only: each migration is a list of statements, run in one transaction. The comments inside
# the statements document the schema (docs/schema.md's schema section is generated from them).
MIGRATIONS: list[tuple[str, list[str]]] = [
    ('create runs, candidates, evaluations', [
        """CREATE TABLE runs (
            id            TEXT PRIMARY KEY,            -- e.g. 20261126-004249-3540
            kind          TEXT NOT NULL,               -- evolve, bench or compare
            status        TEXT NOT NULL,               -- running, finished, interrupted or failed
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            config_json   TEXT NOT NULL,               -- the dataclass config and prompt texts: enough to repeat the run
            model         TEXT,                        -- model name or path
            model_sha256  TEXT,                        -- of the GGUF file that ran
            backend       TEXT,                        -- llamacpp, openai, pool, replay, fake or a strategy
            versions_json TEXT,                        -- symdisc, Python, torch, llama-cpp-python, RestrictedPython
            summary_json  TEXT,                        -- counts, rates, the best candidate
            host          TEXT,                        -- where the run last ran
            pid           INTEGER                      -- its process, to refuse a second live resume
        )
        """,
        """CREATE TABLE candidates (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id        TEXT NOT NULL REFERENCES runs(id),
            seq           INTEGER NOT NULL,            -- 0, 1, 2 ... within the run
            created_at    TEXT NOT NULL,
            origin        TEXT NOT NULL,               -- see candidates.origin below
            name          TEXT,                        -- for seeds: sgd, sign_sgd, ...
            parent_id     INTEGER REFERENCES candidates(id),  -- the program it was made from
            prompt        TEXT,                        -- the user part of the prompt (the system part is in config)
            response      TEXT,                        -- the model's raw reply
            code          TEXT,                        -- the extracted code
            normalized    TEXT,                        -- what the sandbox ran
            ast_hash      TEXT,                        -- equal for programs that differ only in names or format
            fingerprint   TEXT,                        -- behaviour on fixed probe tensors
            status        TEXT NOT NULL,               -- see candidates.status below
            stage         TEXT,                        -- the stage of the verdict (see below)
            reason        TEXT,                        -- a reason code (symdisc.contract.REASONS)
            message       TEXT,                        -- the verdict in words
            line          INTEGER,                     -- the source line a gate verdict points at
            fitness       REAL,                        -- proxy fitness (mean clean accuracy)
            best_lr       REAL,                        -- the learning rate the proxy scored best at
            state_scalars INTEGER,                     -- numbers kept in state per parameter tensor
            state_bytes   INTEGER,                     -- bytes of state per parameter tensor, measured
            duplicate_of  INTEGER REFERENCES candidates(id),  -- the earlier program a repeat matches
            tokens_in     INTEGER,
            tokens_out    INTEGER,
            gen_ms        REAL,                        -- model time
            gate_ms       REAL,                        -- gate round trip
            eval_ms       REAL,                        -- sandbox round trip (NULL: never sent)
            UNIQUE (run_id, seq)
        )
        """,
        "CREATE INDEX candidates_run_status ON candidates(run_id, status)",
        "CREATE INDEX candidates_run_fitness ON candidates(run_id, fitness)",
        """CREATE TABLE evaluations (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            candidate_id  INTEGER NOT NULL REFERENCES candidates(id),
            stage         TEXT NOT NULL,               -- the stage (see below)
            seed          INTEGER,                     -- the task seed of this score
            ok            INTEGER NOT NULL,            -- 1 passed, 0 failed
            fitness       REAL,
            reason        TEXT,
            message       TEXT,
            ms            REAL,
            detail_json   TEXT,                        -- per-learning-rate scores and the like
            created_at    TEXT NOT NULL
        )
        """,
        "CREATE INDEX evaluations_candidate ON evaluations(candidate_id)",
    ]),
    ('create bench_results', [
        """CREATE TABLE bench_results (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id        TEXT NOT NULL REFERENCES runs(id),
            task          TEXT NOT NULL,               -- fmnist-noisy, fmnist, mnist, cifar10
            optimizer     TEXT NOT NULL,               -- a built-in name, a candidate or a file
            seed          INTEGER NOT NULL,
            lr            REAL NOT NULL,               -- the learning rate it trained with
            final_acc     REAL,                        -- test accuracy at the end
            best_acc      REAL,                        -- best test accuracy over evaluations
            final_loss    REAL,                        -- mean training loss over the last 50 steps
            state_bytes   INTEGER,                     -- measured from the live optimizer state
            memory_class  TEXT,                        -- measured: scalar or buffers
            steps_per_s   REAL,                        -- training speed
            diverged      INTEGER NOT NULL DEFAULT 0,  -- 1: NaN or exploding loss
            detail_json   TEXT,                        -- the accuracy curve
            created_at    TEXT NOT NULL
        )
        """,
        "CREATE INDEX bench_results_run ON bench_results(run_id)",
    ]),
    ('genomes and the held-out funnel', [
        "ALTER TABLE candidates ADD COLUMN genome_json TEXT  /* genome proposers: the genome (and TPE trial) */",
        "ALTER TABLE candidates ADD COLUMN heldout REAL  /* held-out score, for candidates the funnel promoted */",
        "ALTER TABLE runs ADD COLUMN parent_run TEXT  /* compare: the comparison a run belongs to */",
    ]),
    ("a reason is never a status: the gate's 'duplicate' reason becomes 'redefined'", [
        "UPDATE candidates SET reason = 'redefined' WHERE reason = 'duplicate'",
    ]),
    ('the cascade: rank by the highest fidelity reached, with its noise band; the audit task', [
        "ALTER TABLE candidates ADD COLUMN fidelity INTEGER  /* highest cascade stage reached: 1 proxy, 2 heldout, "
        "3 long */",
        "ALTER TABLE candidates ADD COLUMN rank_score REAL  /* the score at that stage: what the run ranks by */",
        "ALTER TABLE candidates ADD COLUMN rank_band REAL  /* its seed-to-seed noise band (a difference within "
        "it is a tie) */",
        "ALTER TABLE candidates ADD COLUMN audit REAL  /* the audit task's score (never selected on; top few only) */",
        "UPDATE candidates SET fidelity = CASE WHEN heldout IS NOT NULL THEN 2 ELSE 1 END, "
        "rank_score = COALESCE(heldout, fitness) WHERE fitness IS NOT NULL",
    ]),
    ('operators, islands, sampled temperature and model per candidate; the search state per run', [
        "ALTER TABLE candidates ADD COLUMN operator TEXT  /* llm: the prompt operator (explore, mutate, ...) */",
        "ALTER TABLE candidates ADD COLUMN model TEXT  /* llm: the model that wrote the reply */",
        "ALTER TABLE candidates ADD COLUMN island INTEGER  /* llm: the island the parent was drawn from */",
        "ALTER TABLE candidates ADD COLUMN temperature REAL  /* llm: the sampling temperature of the request */",
        "ALTER TABLE candidates ADD COLUMN other_id INTEGER  /* crossover: the second parent */",
        "ALTER TABLE runs ADD COLUMN search_json TEXT  /* llm: bandit counts, island members, children drawn */",
    ]),
    ('bench cells: tuning trials beside the final seeds, validation and early-stopped scores (resumable)', [
        "ALTER TABLE bench_results ADD COLUMN phase TEXT NOT NULL DEFAULT 'final'  /* tune: a tuning trial (seed 0, "
        "scored on the validation split); final: a seed at the chosen setting */",
        "ALTER TABLE bench_results ADD COLUMN weight_decay REAL  /* decoupled weight decay it trained with */",
        "ALTER TABLE bench_results ADD COLUMN val_acc REAL  /* validation accuracy at the end (a split of the "
        "training data, labels as noisy as the rest) */",
        "ALTER TABLE bench_results ADD COLUMN early_acc REAL  /* test accuracy at the best validation score "
        "(early stopping) */",
        "ALTER TABLE bench_results ADD COLUMN steps INTEGER  /* training steps of the cell */",
    ]),
    ('fitted constants and repaired replies', [
        "ALTER TABLE candidates ADD COLUMN fit_json TEXT  /* origin fit: the fitted values, the original ones, "
        "the lr multiplier, trials and the sampler */",
        "ALTER TABLE candidates ADD COLUMN repairs TEXT  /* what repair changed in the reply before the gate "
        "(a JSON list; NULL: nothing) */",
    ]),
]

RUN_FIELDS = ("status", "config_json", "model", "model_sha256", "backend", "versions_json", "summary_json", "pid",
              "parent_run", "search_json")
CANDIDATE_FIELDS = (
    "origin", "name", "parent_id", "prompt", "response", "code", "normalized", "ast_hash", "fingerprint",
    "status", "stage", "reason", "message", "line", "fitness", "best_lr", "state_scalars", "state_bytes",
    "duplicate_of", "tokens_in", "tokens_out", "gen_ms", "gate_ms", "eval_ms", "genome_json", "heldout",
    "fidelity", "rank_score", "rank_band", "audit",
    "operator", "model", "island", "temperature", "other_id", "fit_json", "repairs",
)


# The one definition of a run's best candidate, used by `runs list`, `runs best`, the leaderboard,
# the run summary, the prompt, every proposer and `bench RUN_ID`: the highest cascade fidelity a
# candidate reached (1 proxy, 2 held-out, 3 long), then its rank score at that fidelity (the mean
# of its standardized stage scores: config.CascadeConfig.combine), then the earlier candidate. Rows written without the cascade's columns fall back to held-out / proxy.
# best_key is the same order in Python; tiers() adds the noise band (ties within it).
_FIDELITY_SQL = "COALESCE(fidelity, CASE WHEN heldout IS NOT NULL THEN 2 ELSE 1 END)"
BEST_ORDER = f"{_FIDELITY_SQL} DESC, COALESCE(rank_score, heldout, fitness) DESC, seq ASC"


def fidelity_of(row: dict) -> int:
    if row.get("fidelity") is not None:
        return row["fidelity"]
    return 2 if row.get("heldout") is not None else 1


def rank_score(row: dict) -> float:
    for key in ("rank_score", "heldout", "fitness"):
        if row.get(key) is not None:
            return row[key]
    return 0.0


def rank_value(row: dict) -> float:
    """One number in the order of best_key (100 * fidelity + the rank score, clamped to +-49): for
    proposers that need a scalar objective (TPE, tournaments)."""
    return 100.0 * fidelity_of(row) + max(-49.0, min(49.0, rank_score(row)))


def best_key(row: dict) -> tuple:
    return (-fidelity_of(row), -rank_score(row), row["seq"])


def tiers(rows: list[dict]) -> list[int]:
    """Places for rows sorted by best_key, where a row whose score is within the noise band of the
    place's leader (same fidelity) shares its place: no row is placed above another on a
    difference the noise covers."""
    places: list[int] = []
    leader = None
    for i, row in enumerate(rows):
        band = max(row.get("rank_band") or 0.0, (leader or {}).get("rank_band") or 0.0)
        if leader is not None and fidelity_of(row) == fidelity_of(leader) \
                and rank_score(leader) - rank_score(row) <= band:
            places.append(places[-1])
            continue
        leader = row
        places.append(i + 1)
    return places


_VOCABULARY = (("status", STATUSES), ("stage", STAGES), ("reason", REASONS), ("origin", ORIGINS),
               ("operator", OPERATORS))


def _check_vocabulary(fields: dict) -> None:
    """Rows only ever hold the words of symdisc.contract: a typo fails loudly where it is written."""
    for key, words in _VOCABULARY:
        value = fields.get(key)
        if value is not None and value not in words:
            raise ValueError(f"{key} {value!r} is not one of symdisc.contract's {key} codes")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


def held_elsewhere(run: dict) -> bool:
    """Whether a run marked running belongs to another process that is still alive (so resuming it
    here would write beside it). A run left "running" by a killed process is not held."""
    pid = run.get("pid")
    if run.get("status") != "running" or not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LOCK_TIMEOUT_S = 30.0  # how long to wait for another symdisc process's write


def default_db_path() -> Path:
    return symdisc_home() / "symdisc.db"


class Store:
    def __init__(self, path: Optional[Path] = None, create: bool = True):
        self.path = Path(path) if path else default_db_path()
        if not self.path.exists() and not create:
            raise StoreError(f"no run database at {self.path} (set SYMDISC_HOME or run `symdisc evolve` first)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=LOCK_TIMEOUT_S, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self._use_wal()
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise StoreError(f"the run database {self.path} is unreadable ({exc}); move it aside and "
                                 "symdisc will start a new one") from None
            raise StoreError(f"the run database {self.path} stayed locked by another process for "
                             f"{LOCK_TIMEOUT_S:g} s; try again") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the run database {self.path} is unreadable ({exc}); move it aside and "
                             "symdisc will start a new one") from None
        except OSError as exc:
            raise StoreError(f"cannot open the run database {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _use_wal(self) -> None:
        """WAL lets `symdisc runs` read while a run writes. The mode is kept in the file, so only the
        first opening switches; the switch fails at once, without waiting, while another process is
        opening the same new file, hence the retries."""
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- migrations ----------------------------------------------------------------------------
    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                        "applied_at TEXT NOT NULL)")
        applied = {row[0] for row in self.db.execute("SELECT id FROM _migrations")}
        if applied and max(applied) > len(MIGRATIONS):
            raise StoreError(f"the run database {self.path} was written by a newer symdisc "
                             f"(migration {max(applied)}); upgrade symdisc")
        for number, (name, statements) in enumerate(MIGRATIONS, start=1):
            if number in applied:
                continue
            self.db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have applied it between our read and this write lock.
                if self.db.execute("SELECT 1 FROM _migrations WHERE id = ?", (number,)).fetchone():
                    self.db.execute("COMMIT")
                    continue
                # executescript would commit the open transaction; run statements one by one.
                for statement in statements:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)",
                                (number, name, _now()))
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise

    def migrations(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM _migrations ORDER BY id")]

    # -- runs ------------------------------------------------------------------------------------
    def create_run(self, kind: str, config: dict, **fields) -> str:
        run_id = new_run_id()
        now = _now()
        self.db.execute(
            "INSERT INTO runs (id, kind, status, created_at, updated_at, config_json, host, pid) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            (run_id, kind, now, now, json.dumps(config), socket.gethostname(), os.getpid()))
        if fields:
            self.update_run(run_id, **fields)
        return run_id

    def update_run(self, run_id: str, **fields) -> None:
        for key in fields:
            if key not in RUN_FIELDS:
                raise ValueError(f"unknown run field {key}")
        values = {k: (json.dumps(v) if k.endswith("_json") and not isinstance(v, str) else v)
                  for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE runs SET {sets}, updated_at = ? WHERE id = ?", (*values.values(), _now(), run_id))

    def resolve_run_id(self, run_id: str, kind: Optional[str] = None) -> str:
        """Accept a full id, a unique prefix, or `latest` (the newest run of ``kind``, if given)."""
        if run_id == "latest":
            where, args = (" WHERE kind = ?", (kind,)) if kind else ("", ())
            row = self.db.execute(f"SELECT id FROM runs{where} ORDER BY created_at DESC, rowid DESC LIMIT 1",
                                  args).fetchone()
            if row is None:
                raise UsageError(f"there are no {kind + ' ' if kind else ''}runs yet")
            return row[0]
        rows = self.db.execute("SELECT id FROM runs WHERE id LIKE ? ORDER BY id", (run_id + "%",)).fetchall()
        if not rows:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        if len(rows) > 1 and rows[0][0] != run_id:
            raise UsageError(f"{run_id!r} matches {len(rows)} runs; give more of the id")
        return rows[0][0]

    def get_run(self, run_id: str, kind: Optional[str] = None) -> dict:
        run_id = self.resolve_run_id(run_id, kind)
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_dict(row)

    def list_runs(self, limit: int = 50, kind: Optional[str] = None) -> list[dict]:
        sql = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        args = (kind, limit) if kind else (limit,)
        runs = [_run_dict(r) for r in self.db.execute(sql, args)]
        counts = {r["run_id"]: r for r in self.db.execute(
            "SELECT run_id, COUNT(*) AS n, SUM(status = 'evaluated') AS evaluated FROM candidates GROUP BY run_id")}
        bests = {r["run_id"]: r for r in self.db.execute(
            "SELECT run_id, id, fitness, heldout, rank_score FROM (SELECT run_id, id, fitness, heldout, rank_score, "
            "ROW_NUMBER() OVER "
            f"(PARTITION BY run_id ORDER BY {BEST_ORDER}) AS place FROM candidates WHERE status = 'evaluated' "
            "AND fitness IS NOT NULL) WHERE place = 1")}
        for run in runs:
            c, b = counts.get(run["id"]), bests.get(run["id"])
            run["candidates"] = c["n"] if c else 0
            run["evaluated"] = (c["evaluated"] or 0) if c else 0
            run["best_id"] = b["id"] if b else None
            run["best_fitness"] = b["fitness"] if b else None
            run["best_heldout"] = b["heldout"] if b else None
            run["best_rank_score"] = b["rank_score"] if b else None
        return runs

    # -- candidates --------------------------------------------------------------------------
    def add_candidate(self, run_id: str, seq: int, origin: str, status: str = "pending", **fields) -> int:
        fields = {k: v for k, v in fields.items() if v is not None}
        for key in fields:
            if key not in CANDIDATE_FIELDS:
                raise ValueError(f"unknown candidate field {key}")
        _check_vocabulary(dict(fields, status=status, origin=origin))
        cols = ["run_id", "seq", "created_at", "origin", "status", *fields]
        cur = self.db.execute(
            f"INSERT INTO candidates ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            (run_id, seq, _now(), origin, status, *fields.values()))
        return cur.lastrowid

    def update_candidate(self, candidate_id: int, **fields) -> None:
        for key in fields:
            if key not in CANDIDATE_FIELDS:
                raise ValueError(f"unknown candidate field {key}")
        _check_vocabulary(fields)
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE candidates SET {sets} WHERE id = ?", (*fields.values(), candidate_id))

    def get_candidate(self, candidate_id: int) -> dict:
        row = self.db.execute("SELECT * FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
        if row is None:
            raise UsageError(f"no candidate {candidate_id} in {self.path}")
        return dict(row)

    def candidates(self, run_id: str, statuses: Optional[Iterable[str]] = None) -> list[dict]:
        sql = "SELECT * FROM candidates WHERE run_id = ?"
        args: list = [run_id]
        if statuses:
            statuses = list(statuses)
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            args += statuses
        return [dict(r) for r in self.db.execute(sql + " ORDER BY seq", args)]

    def next_seq(self, run_id: str) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM candidates WHERE run_id = ?", (run_id,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def evaluated_count(self, run_id: str) -> int:
        """Proposed candidates that reached the sandbox (the unit of `symdisc compare`'s budget)."""
        row = self.db.execute("SELECT COUNT(*) FROM candidates WHERE run_id = ? AND origin != 'seed' "
                              "AND eval_ms IS NOT NULL", (run_id,)).fetchone()
        return row[0]

    def leaderboard(self, run_id: str, limit: int = 10) -> list[dict]:
        """Evaluated candidates, best first, in the one order of BEST_ORDER."""
        rows = self.db.execute(
            "SELECT * FROM candidates WHERE run_id = ? AND status = 'evaluated' AND fitness IS NOT NULL "
            f"ORDER BY {BEST_ORDER} LIMIT ?", (run_id, limit))
        return [dict(r) for r in rows]

    def best(self, run_id: str) -> Optional[dict]:
        board = self.leaderboard(run_id, 1)
        return board[0] if board else None

    def reason_counts(self, run_id: str) -> dict:
        rows = self.db.execute(
            "SELECT COALESCE(reason, status) AS r, COUNT(*) FROM candidates WHERE run_id = ? AND origin != 'seed' "
            "AND status IN ('rejected', 'failed', 'duplicate') GROUP BY r ORDER BY COUNT(*) DESC", (run_id,))
        return {r[0]: r[1] for r in rows}

    def status_counts(self, run_id: str, proposed_only: bool = False) -> dict:
        """Candidates per status; ``proposed_only`` leaves out the built-in seeds."""
        extra = " AND origin != 'seed'" if proposed_only else ""
        rows = self.db.execute(f"SELECT status, COUNT(*) FROM candidates WHERE run_id = ?{extra} GROUP BY status",
                               (run_id,))
        return {r[0]: r[1] for r in rows}

    def proposal_stats(self, run_id: str, by: str) -> dict:
        """Per operator or per model (``by``): replies, new programs (evaluated: new and through every
        stage it was sent to), improvements (new programs whose fitness beats their parent's) and the
        seconds they cost (generation or fitting, gate, sandbox)."""
        if by not in ("operator", "model", "temperature", "island"):
            raise ValueError(by)
        rows = self.db.execute(
            f"SELECT c.{by} AS k, COUNT(*) AS replies, SUM(c.status = 'evaluated') AS new, "
            "SUM(c.status = 'duplicate') AS repeats, "
            "SUM(c.status = 'evaluated' AND p.fitness IS NOT NULL AND c.fitness > p.fitness) AS improvements, "
            "SUM(COALESCE(c.gen_ms, 0) + COALESCE(c.gate_ms, 0) + COALESCE(c.eval_ms, 0)) / 1000.0 AS seconds "
            "FROM candidates c LEFT JOIN candidates p ON p.id = c.parent_id "
            f"WHERE c.run_id = ? AND c.origin != 'seed' AND c.status != 'pending' AND c.{by} IS NOT NULL "
            "GROUP BY c.{by} ORDER BY c.{by}".replace("{by}", by), (run_id,)).fetchall()
        return {r["k"]: {"replies": r["replies"], "new": r["new"] or 0, "repeats": r["repeats"] or 0,
                         "improvements": r["improvements"] or 0, "seconds": round(r["seconds"] or 0.0, 2)}
                for r in rows}

    def repair_counts(self, run_id: str) -> dict:
        """Replies repair changed, and those it saved: a repair without which the reply would have
        failed (a trimmed parse, a state key given its zero default) and a working program after it."""
        row = self.db.execute(
            "SELECT COUNT(*), SUM(status IN ('evaluated', 'duplicate') AND (repairs LIKE '%\"trim:%' OR "
            "repairs LIKE '%\"state_default:%')) FROM candidates WHERE run_id = ? AND repairs IS NOT NULL",
            (run_id,)).fetchone()
        return {"repaired": row[0] or 0, "saved": row[1] or 0}

    def last_errors(self, run_id: str, limit: int = 3) -> list[dict]:
        rows = self.db.execute(
            "SELECT * FROM candidates WHERE run_id = ? AND status IN ('rejected', 'failed', 'duplicate') "
            "AND origin != 'seed' ORDER BY seq DESC LIMIT ?", (run_id, limit))
        return [dict(r) for r in rows][::-1]

    # -- evaluations -------------------------------------------------------------------------
    def add_evaluation(self, candidate_id: int, stage: str, ok: bool, fitness: Optional[float] = None,
                       seed: Optional[int] = None, reason: Optional[str] = None, message: Optional[str] = None,
                       ms: Optional[float] = None, detail: Optional[dict] = None) -> int:
        _check_vocabulary(dict(stage=stage, reason=reason))
        cur = self.db.execute(
            "INSERT INTO evaluations (candidate_id, stage, seed, ok, fitness, reason, message, ms, detail_json, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (candidate_id, stage, seed, int(ok), fitness, reason, message, ms,
             json.dumps(detail) if detail is not None else None, _now()))
        return cur.lastrowid

    def evaluations(self, candidate_id: int) -> list[dict]:
        return _with_detail(self.db.execute("SELECT * FROM evaluations WHERE candidate_id = ? ORDER BY id",
                                            (candidate_id,)))

    # -- bench results -----------------------------------------------------------------------
    def add_bench_result(self, run_id: str, **fields) -> int:
        detail = fields.pop("detail", None)
        cols = ["run_id", "created_at", *fields, "detail_json"]
        values = [run_id, _now(), *fields.values(), json.dumps(detail) if detail is not None else None]
        cur = self.db.execute(f"INSERT INTO bench_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              values)
        return cur.lastrowid

    def bench_results(self, run_id: str) -> list[dict]:
        return _with_detail(self.db.execute("SELECT * FROM bench_results WHERE run_id = ? ORDER BY id", (run_id,)))


def _with_detail(rows) -> list[dict]:
    out = []
    for r in rows:
        d = dict(r)
        d["detail"] = json.loads(d.pop("detail_json")) if d.get("detail_json") else None
        out.append(d)
    return out


def _run_dict(row) -> dict:
    d = dict(row)
    for key in ("config_json", "versions_json", "summary_json", "search_json"):
        raw = d.pop(key, None)
        d[key[:-5]] = json.loads(raw) if raw else None
    return d
