"""The run database, the exported optimizer and the CLI's listings and errors."""

import importlib.util
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest
import torch

from symdisc import rules
from symdisc.errors import StoreError, UsageError
from symdisc.export import render
from tests.matrix_rules import NEWTON_SCHULZ, NEWTON_SCHULZ_NAMED
from symdisc.store import MIGRATIONS, Store, held_elsewhere


def _cli(*args, env=None, input=None):
    env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "symdisc.cli.app", *args], env=env, capture_output=True, text=True,
                          input=input, timeout=120)


def test_migrations_are_numbered_and_recorded(tmp_path):
    with Store(tmp_path / "a.db") as store:
        assert [m["id"] for m in store.migrations()] == list(range(1, len(MIGRATIONS) + 1))
        mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with Store(tmp_path / "a.db") as store:  # reopening applies nothing twice
        assert len(store.migrations()) == len(MIGRATIONS)


def _open_after(barrier, path, errors):
    barrier.wait()
    try:
        Store(path).close()
    except Exception as exc:  # reported to the parent
        errors.put(str(exc))


def test_processes_starting_together_migrate_once(tmp_path):
    # `symdisc evolve` and `symdisc runs list` started at the same moment on a new database.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_open_after, args=(barrier, tmp_path / "a.db", errors)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert errors.empty(), errors.get()
    assert all(p.exitcode == 0 for p in procs)
    with Store(tmp_path / "a.db") as store:
        assert [m["id"] for m in store.migrations()] == list(range(1, len(MIGRATIONS) + 1))


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "a.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES (99, 'from the future', 'x')")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer symdisc"):
        Store(path)


def test_corrupt_database_is_one_clear_error(tmp_path):
    path = tmp_path / "symdisc.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="unreadable"):
        Store(path)
    result = _cli("runs", "list", env={"SYMDISC_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "unreadable" in result.stderr
    assert path.read_bytes().startswith(b"this is not sqlite")  # nothing was overwritten


def test_a_running_run_is_held_only_by_a_live_other_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert held_elsewhere({"status": "running", "pid": child.pid})
        assert not held_elsewhere({"status": "finished", "pid": child.pid})
        assert not held_elsewhere({"status": "running", "pid": os.getpid()})
        assert not held_elsewhere({"status": "running", "pid": None})
    finally:
        child.kill()
        child.wait()
    assert not held_elsewhere({"status": "running", "pid": child.pid})  # killed: resumable


def test_runs_listing_newest_first_with_ids(tmp_path):
    with Store(tmp_path / "symdisc.db") as store:
        first = store.create_run("evolve", {"memory": "scalar"})
        second = store.create_run("evolve", {"memory": "buffers"})
        cid = store.add_candidate(second, 0, "seed", name="sgd", status="evaluated", fitness=0.5, code="x")
        with pytest.raises(UsageError):
            store.resolve_run_id("nope")
        assert store.resolve_run_id("latest") == second
    env = {"SYMDISC_HOME": str(tmp_path)}
    listed = json.loads(_cli("runs", "list", "--json", env=env).stdout)
    assert [r["id"] for r in listed] == [second, first]
    assert listed[0]["best_fitness"] == 0.5
    best = json.loads(_cli("runs", "best", second, "--json", env=env).stdout)
    assert best["id"] == cid and best["fitness"] == 0.5
    shown = json.loads(_cli("runs", "show", "latest", "--json", env=env).stdout)
    assert shown["id"] == second and shown["leaderboard"][0]["id"] == cid
    # in a log (no terminal) the best rule's code is printed as wide as the code, not padded to the log width
    plain = _cli("runs", "show", "latest", env=env).stdout.splitlines()
    assert plain[-1].strip() == "x" and max(len(line) for line in plain if "x" in line.split()) < 80
    assert _cli("runs", "path", env=env).stdout.strip() == str(tmp_path / "symdisc.db")


def test_cli_errors_are_one_line(tmp_path):
    missing = _cli("check", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"symdisc: error: no such file: {tmp_path / 'nope.py'}"
    no_db = _cli("runs", "show", "nope", env={"SYMDISC_HOME": str(tmp_path)})
    assert no_db.returncode == 1 and "no run database" in no_db.stderr
    Store(tmp_path / "symdisc.db").close()
    bad = _cli("runs", "show", "nope", env={"SYMDISC_HOME": str(tmp_path)})
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    empty = _cli("runs", "list", "--json", env={"SYMDISC_HOME": str(tmp_path / "empty")})
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


def test_check_command_json_contract():
    ok = _cli("check", "-", "--json", input=rules.source("robust_zero_state"))
    data = json.loads(ok.stdout)
    assert ok.returncode == 0 and data["ok"] is True and data["stage"] == "probe"
    assert data["memory_class"] == "scalar" and data["state_scalars"] == 1
    assert set(data["ms"]) == {"gate", "sandbox"}
    adam = _cli("check", "-", "--json", input=rules.source("adam"))
    data = json.loads(adam.stdout)
    assert adam.returncode == 1 and data["stage"] == "gate" and data["reason"] == "stateful"
    assert _cli("check", "-", "--memory", "buffers", input=rules.source("adam")).returncode == 0


def _load_exported(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORTED = {"robust_zero_state": rules.source("robust_zero_state"), "adam": rules.source("adam"),
            "newton_schulz": NEWTON_SCHULZ, "newton_schulz_named": NEWTON_SCHULZ_NAMED}  # matrix products, eye, diag


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_export_is_a_working_optimizer_with_resumable_state(tmp_path, name):
    candidate = {"id": 7, "run_id": "r", "name": name, "normalized": EXPORTED[name], "fitness": 0.7, "best_lr": 0.01}
    path = tmp_path / f"{name}.py"
    path.write_text(render(candidate, "scalar", "test"))
    module = _load_exported(path)
    optimizer_class = [v for k, v in vars(module).items() if isinstance(v, type) and
                       issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer][0]

    torch.manual_seed(0)
    data = torch.randn(64, 5)
    target = data @ torch.randn(5, 1)

    def make():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def train(model, opt, steps):
        for _ in range(steps):
            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(data), target)
                loss.backward()
                return loss
            opt.step(closure)

    model = make()
    opt = optimizer_class(model.parameters(), lr=0.01)
    start_loss = torch.nn.functional.mse_loss(model(data), target).item()
    train(model, opt, 10)
    checkpoint = io.BytesIO()  # a real round trip through torch.save, as a user would checkpoint
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, checkpoint)
    train(model, opt, 10)

    checkpoint.seek(0)
    saved = torch.load(checkpoint)
    resumed = make()
    resumed.load_state_dict(saved["model"])
    resumed_opt = optimizer_class(resumed.parameters(), lr=0.01)
    resumed_opt.load_state_dict(saved["opt"])
    train(resumed, resumed_opt, 10)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert torch.nn.functional.mse_loss(model(data), target).item() < start_loss
    # lr schedulers drive the rule through param_groups
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, 1)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)


def test_export_warns_when_a_stored_rule_fails_todays_probes(tmp_path):
    unguarded = "def update(grad, param, state, lr, t):\n    return lr * grad / torch.norm(grad)\n"
    guarded = unguarded.replace("torch.norm(grad)", "(torch.norm(grad) + 1e-08)")
    with Store(tmp_path / "symdisc.db") as store:
        run = store.create_run("evolve", {"memory": "scalar"})
        ids = [store.add_candidate(run, seq, "llm", status="evaluated", code=code, normalized=code, fitness=0.5)
               for seq, code in enumerate((unguarded, guarded))]
    env = {"SYMDISC_HOME": str(tmp_path)}
    old = _cli("runs", "export", str(ids[0]), "-o", str(tmp_path / "old.py"), env=env)
    assert old.returncode == 0 and (tmp_path / "old.py").exists()
    assert "warning: candidate" in old.stderr and "sparse_grad" in old.stderr and "all-zero gradient" in old.stderr
    fine = _cli("runs", "export", str(ids[1]), "-o", str(tmp_path / "fine.py"), env=env)
    assert fine.returncode == 0 and "warning" not in fine.stderr and (tmp_path / "fine.py").exists()
    unchecked = _cli("runs", "export", str(ids[0]), "-o", str(tmp_path / "again.py"), "--no-check", env=env)
    assert unchecked.returncode == 0 and "warning" not in unchecked.stderr


def test_one_best_everywhere(tmp_path):
    # Candidate b has the best proxy fitness, c the best held-out score: every place that names a
    # run's best must name c (BEST_ORDER), and a seed without a held-out score ranks below both.
    from symdisc.bench.entries import resolve_entry
    from symdisc.search.programs import ProgramDatabase

    sgd = rules.source("sgd")
    with Store(tmp_path / "symdisc.db") as store:
        run_id = store.create_run("evolve", {"memory": "scalar"})
        ids = {}
        for seq, (name, fitness, heldout) in enumerate([("a", 0.70, None), ("b", 0.74, 0.60), ("c", 0.71, 0.66)]):
            ids[name] = store.add_candidate(run_id, seq, "llm", status="evaluated", name=name, code=sgd,
                                            normalized=sgd, fitness=fitness, heldout=heldout)
        db = ProgramDatabase()
        for row in store.candidates(run_id, ["evaluated"]):
            db.add(row)
        assert store.best(run_id)["id"] == ids["c"]
        assert store.leaderboard(run_id, 3)[0]["id"] == ids["c"]
        assert [r["id"] for r in store.leaderboard(run_id, 3)] == [ids["c"], ids["b"], ids["a"]]
        assert db.best()["id"] == ids["c"]  # what the run summary reports
        assert store.list_runs()[0]["best_id"] == ids["c"]
        assert resolve_entry(run_id, store).label == f"candidate-{ids['c']}"
    env = {"SYMDISC_HOME": str(tmp_path)}
    listed = json.loads(_cli("runs", "list", "--json", env=env).stdout)
    assert listed[0]["best_id"] == ids["c"] and listed[0]["best_heldout"] == 0.66
    assert json.loads(_cli("runs", "best", run_id, "--json", env=env).stdout)["id"] == ids["c"]
