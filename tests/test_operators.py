"""Issue 12: operators, weighted parents, islands, temperatures and the bandit, with a scripted model."""

import random

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.llm.fake import ScriptedBackend
from symdisc.search.diversity import Bandit, Islands, parent_weights
from symdisc.search.loop import Evolution
from symdisc.search.proposers.llm import LLMProposer
from symdisc.store import Store

FAST_PROXY = ProxyConfig(seeds=2, steps=30)

# Distinct programs, so that most replies are new; a few repeats and one broken reply.
VARIANTS = [
    "def update(grad, param, state, lr, t):\n    return lr * torch.tanh(grad * %s)\n" % k
    for k in ("0.5", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0")
]
REPEAT = "def update(grad, param, state, lr, t):\n    return lr * grad\n"  # the sgd seed, renamed nothing
BROKEN = "def update(grad, param, state, lr, t):\n    return lr * grad * c1\n"


def _config(**kw):
    kw.setdefault("proxy", FAST_PROXY)
    kw.setdefault("backend", "fake")
    kw.setdefault("proposer", "llm")
    kw.setdefault("funnel", False)
    return EvolveConfig(**kw)


def test_parent_weight_decays_with_children():
    fit = [0.30, 0.40, 0.50, 0.60]
    before = parent_weights(fit, [0, 0, 0, 0])
    after = parent_weights(fit, [0, 0, 0, 3])
    assert before[3] > before[2] > before[0]  # good programs are favoured
    assert after[3] == before[3] / 4  # ... and give way with every child drawn from them
    islands = Islands(1, 10)
    programs = [{"id": i, "fitness": f} for i, f in enumerate(fit)]
    w0 = islands.weight(programs, 3)
    for _ in range(2):
        islands.note_draw(3)
    assert islands.weight(programs, 3) < w0 / 2.5
    draws = [islands.draw_parent(programs, random.Random(s))["id"] for s in range(400)]
    assert draws.count(3) < 400 * 0.6  # not always the best


def test_bandit_prefers_the_rewarded_arm():
    b = Bandit(["a", "b", "c"])
    rng = random.Random(0)
    for _ in range(60):
        arm = b.choose(rng)
        b.update(arm, 2.0 if arm == "b" else 0.0)
    assert b.n["b"] > b.n["a"] and b.n["b"] > b.n["c"]
    c = Bandit(["a", "b", "c"])
    c.load(b.to_dict())
    assert c.to_dict() == b.to_dict()


def test_islands_migrate_their_best():
    isl = Islands(2, 2)
    progs = {1: {"id": 1, "fitness": 0.5, "seq": 1, "heldout": None},
             2: {"id": 2, "fitness": 0.7, "seq": 2, "heldout": None}}
    isl.add(1, 0)
    isl.add(2, 1)
    isl.note_draw(None)
    isl.note_draw(None)
    assert isl.migrate_due()
    from symdisc.store import best_key

    moved = isl.migrate(progs, best_key)
    assert {(m[1], m[3]) for m in moved} == {(1, 1), (2, 0)}


def test_consecutive_prompts_differ_and_requests_never_repeat(home, gate, sandbox):
    # Every reply a repeat or broken: the database holds only the seeds, the hardest case for variety.
    backend = ScriptedBackend([REPEAT, BROKEN, REPEAT, REPEAT])
    store = Store()
    evo = Evolution.start(store, _config(candidates=14), backend, gate, sandbox)
    evo.run()
    users = [r.user for r in backend.requests]
    assert len(users) == 14
    assert all(a != b for a, b in zip(users, users[1:]))
    keys = {(r.user, r.temperature, r.seed) for r in backend.requests}
    assert len(keys) == len(backend.requests)
    assert len({r.temperature for r in backend.requests}) >= 2  # drawn from a set
    rows = [r for r in store.candidates(evo.run_id) if r["origin"] == "llm"]
    assert all(r["operator"] and r["model"] == "scripted" and r["temperature"] is not None for r in rows)
    assert any(r["operator"] == "fix" for r in rows)  # the broken reply came back with its error
    fix = next(r for r in backend.requests if "TASK: FIX" in r.user)
    assert "c1" in fix.user and "return lr * grad * c1" in fix.user


def test_edit_operators_show_the_whole_parent(home, gate, sandbox):
    backend = ScriptedBackend(VARIANTS)
    store = Store()
    evo = Evolution.start(store, _config(candidates=8, operators=["mutate"]), backend, gate, sandbox)
    evo.run()
    rows = {r["id"]: r for r in store.candidates(evo.run_id)}
    for req, row in zip(backend.requests, [r for r in rows.values() if r["origin"] == "llm"]):
        parent = rows[row["parent_id"]]
        assert (parent["normalized"] or parent["code"]).strip() in req.user
        assert "The one change to make:" in req.user


def test_temperature_rises_after_repeats(home, gate, sandbox):
    backend = ScriptedBackend([REPEAT])
    store = Store()
    config = _config(candidates=10, operators=["mutate"], islands=1)
    config.sampling.temperatures = [0.7]
    evo = Evolution.start(store, config, backend, gate, sandbox)
    evo.run()
    temps = [r.temperature for r in backend.requests]
    assert temps[0] == 0.7 and max(temps) > 0.7


def test_bandit_state_survives_resume(home, gate, sandbox):
    backend = ScriptedBackend(VARIANTS + [REPEAT, BROKEN])
    store = Store()
    evo = Evolution.start(store, _config(candidates=6), backend, gate, sandbox)
    evo.run()
    saved = store.get_run(evo.run_id)["search"]
    assert sum(v["n"] for v in saved["bandits"]["operator"].values()) == 6
    resumed_proposer = LLMProposer(ScriptedBackend(VARIANTS[3:]))
    evo2 = Evolution.resume(store, evo.run_id, resumed_proposer, gate, sandbox, overrides={"candidates": 9})
    evo2.proposer.start(evo2)
    assert evo2.proposer.bandits["operator"].to_dict() == saved["bandits"]["operator"]
    assert evo2.proposer.islands.to_dict()["children"] == saved["islands"]["children"]
    evo2.run()
    after = store.get_run(evo.run_id)["search"]
    assert sum(v["n"] for v in after["bandits"]["operator"].values()) == 9
    stats = store.proposal_stats(evo.run_id, "operator")
    assert sum(s["replies"] for s in stats.values()) == 9
    assert store.proposal_stats(evo.run_id, "model")["scripted"]["replies"] == 9


def test_several_models_are_drawn_by_the_bandit(home, gate, sandbox):
    a, b = ScriptedBackend(VARIANTS[:4]), ScriptedBackend(VARIANTS[4:])
    b.info = dict(b.info, model="other")
    proposer = LLMProposer(a, models=[("small", a, 0.5), ("big", b, 1.5)])
    store = Store()
    evo = Evolution.start(store, _config(candidates=6), proposer, gate, sandbox)
    evo.run()
    assert a.calls and b.calls
    assert set(store.proposal_stats(evo.run_id, "model")) == {"small", "big"}


def test_several_models_in_parallel_each_answer_their_own_requests(home, gate, sandbox):
    # --parallel with several --model: a request must be decoded by the model its bandit chose
    # (it once went to the first model whatever the draw, with the other model's name logged).
    a, b = ScriptedBackend(VARIANTS[:4]), ScriptedBackend(VARIANTS[4:])
    proposer = LLMProposer(a, models=[("small", a, 0.5), ("big", b, 1.5)])
    store = Store()
    config = _config(candidates=8)
    config.parallel = 3
    evo = Evolution.start(store, config, proposer, gate, sandbox)
    evo.run()
    assert a.calls and b.calls and a.calls + b.calls == 8
    by_model = {name: [r for r in store.candidates(evo.run_id) if r["origin"] == "llm" and r["model"] == name]
                for name in ("small", "big")}
    assert len(by_model["small"]) == a.calls and len(by_model["big"]) == b.calls
    assert {r["response"] for r in by_model["small"]} <= set(VARIANTS[:4])
    assert {r["response"] for r in by_model["big"]} <= set(VARIANTS[4:])


def test_legacy_and_independent_modes(home, gate, sandbox):
    for mode in ("llm-legacy", "llm-independent"):
        backend = ScriptedBackend(VARIANTS)
        store = Store()
        evo = Evolution.start(store, _config(candidates=3, proposer=mode), backend, gate, sandbox)
        evo.run()
        ops = {r["operator"] for r in store.candidates(evo.run_id) if r["origin"] == "llm"}
        assert ops == {mode.split("-")[1]}
        if mode == "llm-independent":
            assert len({r.user for r in backend.requests}) == 1
            assert len({r.seed for r in backend.requests}) == 3


def test_independent_baseline_spreads_over_several_models(home, gate, sandbox):
    a, b = ScriptedBackend(VARIANTS[:4]), ScriptedBackend(VARIANTS[4:])
    proposer = LLMProposer(a, mode="llm-independent", models=[("small", a, 0.5), ("big", b, 1.5)])
    store = Store()
    evo = Evolution.start(store, _config(candidates=6, proposer="llm-independent"), proposer, gate, sandbox)
    evo.run()
    assert a.calls == b.calls == 3
    stats = store.proposal_stats(evo.run_id, "model")
    assert stats["small"]["replies"] == stats["big"]["replies"] == 3


def test_compare_runs_the_independent_baseline_beside_evolution(home, gate, sandbox):
    from symdisc.contract import SCALAR
    from symdisc.search.compare import run_compare
    from symdisc.search.proposers import make_proposer

    store = Store()
    report = run_compare(store, ["llm", "llm-independent"], evaluations=3, repeats=1, memory=SCALAR,
                         make_proposer=lambda name: make_proposer(name, ScriptedBackend(VARIANTS)), gate=gate,
                         sandbox=sandbox, proxy=FAST_PROXY, funnel=False, parallel=2)
    assert set(report["table"]) == {"llm", "llm-independent"}
    for runs in report["results"].values():
        assert store.evaluated_count(runs[0]["run_id"]) == 3
        # the baseline decodes as the loop does, not one request at a time beside a batched loop
        assert store.get_run(runs[0]["run_id"])["config"]["parallel"] == 2
