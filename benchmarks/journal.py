"""The campaigns' journal: every step an ordinary symdisc command whose --json answer is saved.

A step's answer goes to OUT/STEP.json when the command succeeds (its stderr to OUT/STEP.log), and a
step whose answer is there is not run again, so a campaign resumes after a stop by being run again
with the same arguments. A step that was stopped half-way can be continued instead of restarted:
``resume()`` returns the command that goes on (``--resume RUN_ID``), found with ``stopped_run``.

The run database itself lives outside the repository (SYMDISC_HOME), so a measurement that spans
several machines keeps a compressed copy beside its journal: ``snapshot`` writes OUT/home.db.gz
(a consistent copy, byte-identical when nothing changed), ``restore`` puts it back where a new
machine has no database yet.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def symdisc(*args: str) -> list[str]:
    """A symdisc command run by this interpreter on this tree's code (``env()`` sets PYTHONPATH)."""
    return [sys.executable, "-m", "symdisc.cli.app", *args]


def shown(argv: list[str]) -> str:
    """The command as a reader types it."""
    return " ".join(["symdisc", *argv[3:]] if argv[:3] == symdisc() else argv)


def env(home: str) -> dict:
    """The environment of every step: the campaign's run database, this tree's code, polite threads."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, SYMDISC_HOME=home, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=path)


def say(message: str, who: str = "campaign") -> None:
    print(f"{who}: {message}", file=sys.stderr, flush=True)


def saved(name: str, out: Path):
    """A finished step's answer, or None."""
    answer = out / f"{name}.json"
    return json.loads(answer.read_text()) if answer.exists() else None


def run_step(name: str, argv: list[str], out: Path, env: dict, resume=None, may_fail: bool = False) -> dict:
    """Run one command, or return its saved answer. ``resume()`` gives the argv that continues a
    stopped run of this step ([] when there is none). A failing command stops the campaign, unless
    ``may_fail``: then the failure itself is the step's answer ({"failed": exit status}), kept like
    any other so that a resumed campaign takes the same path."""
    done = saved(name, out)
    if done is not None:
        return done
    command = shown(argv)  # what reproduces the step, also when a stopped run of it is continued
    extra = resume() if resume else []
    if extra:
        argv = extra
    say(f"{name}: {shown(argv)}")
    t0 = time.time()
    with open(out / f"{name}.log", "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shown(argv)}\n")
        log.flush()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT, text=True)
    if proc.returncode != 0 and not may_fail:
        raise SystemExit(f"campaign: step {name} failed (exit {proc.returncode}); see {out / (name + '.log')}")
    data = json.loads(proc.stdout) if proc.returncode == 0 else {"failed": proc.returncode}
    data["campaign_wall_s"] = round(time.time() - t0, 1)
    data["campaign_command"] = command
    if extra:
        data["campaign_resumed_with"] = shown(argv)  # the wall time is this last part's
    answer = out / f"{name}.json"
    tmp = answer.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.rename(answer)
    if env.get("SYMDISC_HOME"):
        snapshot(env["SYMDISC_HOME"], out)  # what the next steps read, for a machine that resumes
    say(f"{name}: {'failed' if 'failed' in data else 'done'} in {data['campaign_wall_s']:.0f} s")
    return data


def stopped_run(home: str, kind: str, match) -> list[str]:
    """[the id] of a stopped run of ``kind`` whose config ``match`` accepts (to --resume it), or []."""
    if not (Path(home) / "symdisc.db").exists():
        return []
    from symdisc.store import Store

    with Store(Path(home) / "symdisc.db", create=False) as store:
        for run in store.list_runs(limit=500, kind=kind):
            if run["status"] != "finished" and not run.get("parent_run") and match(run["config"] or {}):
                return [run["id"]]
    return []


SNAPSHOT = "home.db.gz"


def snapshot(home, out) -> Path | None:
    """Write OUT/home.db.gz, a compressed consistent copy of HOME's run database (None without one).
    Safe while another process writes the database (SQLite's VACUUM INTO reads one transaction)."""
    db, out = Path(home) / "symdisc.db", Path(out)
    if not db.exists():
        return None
    plain, target = out / "home.db.copy.tmp", out / SNAPSHOT
    plain.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    try:
        con.execute("VACUUM INTO ?", (str(plain),))
    finally:
        con.close()
    packed = out / (SNAPSHOT + ".tmp")
    with open(plain, "rb") as src, open(packed, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    plain.unlink()
    os.replace(packed, target)
    return target


def restore(home, out) -> bool:
    """Put OUT/home.db.gz back as HOME's run database when HOME has none; True when it did."""
    db, packed = Path(home) / "symdisc.db", Path(out) / SNAPSHOT
    if db.exists() or not packed.exists():
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_suffix(".restoring")
    with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, db)
    say(f"restored the run database from {packed}")
    return True
