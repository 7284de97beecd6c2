"""--parallel N: several requests in flight, each built from the database when its slot frees up."""

import json
import os
import subprocess
import sys

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.llm.fake import ScriptedBackend
from symdisc.search.loop import Evolution
from tests.killing import evolve_then_kill
from symdisc.store import Store

FAST_PROXY = ProxyConfig(seeds=2, steps=30)
VARIANTS = [f"def update(grad, param, state, lr, t):\n    return lr * torch.tanh({k} * grad)\n" for k in range(2, 40)]


def test_parallel_keeps_n_requests_in_flight_and_stores_every_reply(home, gate, sandbox):
    backend = ScriptedBackend(["no code", *VARIANTS])
    seen = []
    submit = backend.submit

    def watch(request):
        seen.append(len(getattr(backend, "_waiting", [])))  # requests already in flight
        return submit(request)

    backend.submit = watch
    store = Store()
    config = EvolveConfig(proposer="llm", backend="fake", candidates=9, parallel=3, proxy=FAST_PROXY)
    evo = Evolution.start(store, config, backend, gate, sandbox)
    summary = evo.run()
    proposed = [r for r in store.candidates(evo.run_id) if r["origin"] == "llm"]
    assert summary["candidates"] == 9 and len(proposed) == 9
    assert all(r["status"] != "pending" for r in proposed)
    assert max(seen) == 2  # three in flight at most: the third joins two waiting
    assert seen[:3] == [0, 1, 2]
    assert sorted(r["seq"] for r in proposed) == list(range(proposed[0]["seq"], proposed[0]["seq"] + 9))
    # a request made after the first reply was judged sees its error (built when its slot freed up)
    assert "no_code" not in backend.requests[0].user
    assert "no_code" in backend.requests[3].user


def test_parallel_respects_an_evaluation_budget(home, gate, sandbox):
    backend = ScriptedBackend(VARIANTS)
    backend.per_wait = 2
    store = Store()
    config = EvolveConfig(proposer="llm", backend="fake", candidates=None, evaluations=5, parallel=4, proxy=FAST_PROXY)
    evo = Evolution.start(store, config, backend, gate, sandbox)
    evo.run()
    assert store.evaluated_count(evo.run_id) - 3 <= 5  # the seeds count too; never over the budget


def test_parallel_resume_after_sigkill_loses_no_stored_reply(tmp_path):
    home = tmp_path / "home"
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(VARIANTS))
    env = dict(os.environ, SYMDISC_HOME=str(home))
    db = evolve_then_kill(home, ["--proposer", "llm", "--fake-replies", str(replies), "--fake-delay", "0.3", "-n", "10", "--parallel", "3"], env)
    with Store(db) as store:
        run = store.list_runs()[0]
        before = store.candidates(run["id"])
        assert store.get_run(run["id"])["config"]["parallel"] == 3
    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "evolve", "--resume", run["id"],
                             "--fake-replies", str(replies), "--json"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        after = store.candidates(run["id"])
    assert len([r for r in after if r["origin"] == "llm"]) == 10
    assert all(r["status"] != "pending" for r in after)
    assert len({r["seq"] for r in after}) == len(after)
    for old in before:
        assert next(r for r in after if r["id"] == old["id"])["response"] == old["response"]
