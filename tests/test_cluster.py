"""Clustered runs on a local Ray cluster on loopback: overlap, a killed evaluator, resume.

Skipped where Ray is not installed (pip install 'symdisc[ray]'; make install adds it).
"""

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from symdisc.llm.fake import ScriptedBackend
from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.store import Store

ray = pytest.importorskip("ray")

from symdisc.search.cluster import Cluster, ClusterEvolution  # noqa: E402 (after the skip)

FAST = ProxyConfig(seeds=2, steps=30)
VARIANTS = [f"def update(grad, param, state, lr, t):\n    return lr * torch.tanh({k} * grad)\n" for k in range(2, 60)]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", include_dashboard=False, num_cpus=2, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def _config(**kw):
    kw.setdefault("proxy", FAST)
    kw.setdefault("funnel", False)
    kw.setdefault("proposer", "llm")
    return EvolveConfig(backend="fake", cluster="auto", **kw)


def _check_every_candidate_once(store, run_id, proposed):
    rows = store.candidates(run_id)
    assert len({r["seq"] for r in rows}) == len(rows), "a seq was stored twice"
    assert not [r for r in rows if r["status"] == "pending"], "a candidate was left pending"
    assert len([r for r in rows if r["origin"] == "seed"]) == 3
    assert len([r for r in rows if r["origin"] == "llm"]) == proposed
    return rows


def test_clustered_run_survives_a_killed_evaluator(home, gate, ray_cluster):
    store = Store()
    backend = ScriptedBackend(VARIANTS, delay_s=0.2, by_seed=True)
    killed = []

    def kill_a_busy_evaluator(kind, data):
        if kind == "candidate" and data["row"]["origin"] == "llm" and not killed:
            busy = cluster.evaluators.busy()
            if busy:  # an evaluator with a candidate in flight
                ray.kill(busy[0])
                killed.append(busy[0])

    said = []
    with Cluster("auto", backend, proposers=2, evaluators=2, timeout_s=10, say=said.append) as cluster:
        # llm-legacy: its prompt always shows the four best, which the last assertion counts
        evo = ClusterEvolution.start(store, _config(candidates=12, proposer="llm-legacy"), backend, gate, cluster,
                                     kill_a_busy_evaluator)
        summary = evo.run()
        assert killed and cluster.replacements_left["evaluator"] == 1
    assert [m for m in said if m.startswith("evaluator actor") and "1 left; starting a replacement" in m], said
    assert store.get_run(evo.run_id)["status"] == "finished"
    rows = _check_every_candidate_once(store, evo.run_id, 12)
    proposed = [r for r in rows if r["origin"] == "llm"]
    # the killed actor's candidate was evaluated again elsewhere (or, at worst, recorded as a crash)
    assert all(r["status"] in ("evaluated", "duplicate") or (r["status"], r["reason"]) == ("failed", "crash")
               for r in proposed)
    assert len([r for r in proposed if r["status"] == "evaluated"]) >= 10
    assert summary["candidates"] == 12
    # prompts are built in the driver from results that came back: three seeds, then the run's own
    assert proposed[-1]["prompt"].count("# score") == 4


def test_clustered_run_resumes_a_pending_reply(home, gate, ray_cluster):
    store = Store()
    backend = ScriptedBackend(VARIANTS, delay_s=0.05, by_seed=True)
    with Cluster("auto", backend, proposers=2, evaluators=1, timeout_s=10) as cluster:
        evo = ClusterEvolution.start(store, _config(candidates=4), backend, gate, cluster)
        evo.run()
        # as if the driver had been killed after storing a reply and before its verdict
        stored = store.add_candidate(evo.run_id, store.next_seq(evo.run_id), "llm", response=VARIANTS[-1])
        store.update_run(evo.run_id, status="running", pid=None)
        again = ClusterEvolution.resume(store, evo.run_id, backend, gate, cluster, overrides={"candidates": 7})
        again.run()
    assert store.get_run(evo.run_id)["status"] == "finished"
    rows = _check_every_candidate_once(store, evo.run_id, 7)
    assert next(r for r in rows if r["id"] == stored)["status"] == "evaluated"


def test_a_lost_evaluator_is_replaced(ray_cluster):
    said = []
    with Cluster("auto", None, evaluators=1, timeout_s=10, say=said.append) as cluster:
        first = cluster.evaluators.actors[0]
        ray.kill(first)
        dead = None
        for _ in range(100):  # ray.kill is asynchronous: a call made at once may still be served
            try:
                ray.get(first.ready.remote(), timeout=10)
            except ray.exceptions.RayError as exc:
                dead = exc
                break
            time.sleep(0.1)
        assert isinstance(dead, ray.exceptions.RayActorError), dead
        cluster.lost("evaluator", 0, dead)
        assert cluster.evaluators.alive == [] and cluster.replacing("evaluator")
        # the in-line path waits for the replacement instead of failing the run
        answer = cluster.evaluate(VARIANTS[0], stages=("probe",))
        assert answer["ok"], answer
        assert cluster.evaluators.alive == [1] and not cluster.starting
        # the budget is one replacement per actor: the next loss is final
        cluster.lost("evaluator", 1, dead)
        assert not cluster.replacing("evaluator")
        with pytest.raises(Exception, match="every evaluator actor has died"):
            cluster.evaluate(VARIANTS[0], stages=("probe",))
    assert any("started in place of a lost one" in m for m in said), said
    assert any("no replacements left" in m for m in said), said


def test_model_servers_are_driven_by_one_proposer_actor(ray_cluster):
    # Several actors would each allow --api-concurrency requests to the same server.
    from symdisc.llm.openai_http import OpenAIBackend

    said = []
    with Cluster("auto", OpenAIBackend("http://127.0.0.1:9/v1"), proposers=3, evaluators=1,
                 say=said.append) as cluster:
        assert len(cluster.proposers.actors) == 1
    assert any("--proposers 3 ignored" in line for line in said)


def test_local_path_does_not_import_ray(tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(VARIANTS[:2]))
    code = ("import sys; from symdisc.cli.app import main; sys.argv = ['symdisc'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('RAY' if 'ray' in sys.modules else 'NO-RAY')")
    out = subprocess.run([sys.executable, "-c", code, "evolve", "--proposer", "llm", "--fake-replies", str(replies), "-n", "1",
                          "--no-funnel", "--json"], env=dict(os.environ, SYMDISC_HOME=str(tmp_path / "home")),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("NO-RAY")
