"""Start `symdisc evolve` (or `symdisc bench`) in a subprocess and SIGKILL it once it has stored a few
candidates (bench cells)."""

import os
import signal
import subprocess
import sys
import time

from symdisc.store import Store


def evolve_then_kill(home, args: list, env: dict, proposed: int = 3, seeds: int = 3):
    """Run ``symdisc evolve ARGS`` until ``proposed`` candidates beyond the seeds are stored, then kill
    its whole process group with SIGKILL (no handler runs). Returns the database path."""
    proc = subprocess.Popen([sys.executable, "-m", "symdisc.cli.app", "evolve", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = home / "symdisc.db"
    deadline, done = time.time() + 120, 0
    while time.time() < deadline and done < proposed:
        time.sleep(0.3)
        if db.exists():
            with Store(db) as store:
                runs = store.list_runs()
                done = runs[0]["candidates"] - seeds if runs else 0
    assert done >= proposed, "the run did not get going"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return db


def bench_then_kill(home, args: list, env: dict, final_cells: int = 1, sig: int = signal.SIGKILL,
                    stderr=subprocess.DEVNULL):
    """Run ``symdisc bench ARGS`` until ``final_cells`` final seeds are stored, then send ``sig`` to its
    process group (SIGKILL: no handler runs; SIGINT: Ctrl-C, with the default disposition restored
    in case this process was started with SIGINT ignored). Returns (database path, run id), or
    (database path, run id, process) for any other signal, which the caller waits for."""
    proc = subprocess.Popen([sys.executable, "-m", "symdisc.cli.app", "bench", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = home / "symdisc.db"
    deadline, done, run_id = time.time() + 180, 0, None
    while time.time() < deadline and done < final_cells and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            with Store(db) as store:
                runs = store.list_runs(kind="bench")
                if runs:
                    run_id = runs[0]["id"]
                    done = sum((r.get("phase") or "final") == "final" for r in store.bench_results(run_id))
    assert done >= final_cells and proc.poll() is None, "the bench did not get going (or finished before the kill)"
    os.killpg(proc.pid, sig)
    if sig != signal.SIGKILL:
        return db, run_id, proc
    proc.wait()
    return db, run_id
