"""Start `symdisc evolve` in a subprocess and SIGKILL it once it has stored a few candidates."""

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
