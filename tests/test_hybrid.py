"""The hybrid proposer with a scripted model: the loop never waits for it, replies join the
population, prompts show every source's programs, and the run resumes after SIGKILL."""

import json
import os
import random
import subprocess
import sys
import threading

from killing import evolve_then_kill
from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.llm import Generation
from symdisc.llm.fake import ScriptedBackend
from symdisc.search.diversity import RateBandit
from symdisc.search.loop import Evolution
from symdisc.search.proposers import make_proposer
from symdisc.store import Store

FAST = ProxyConfig(seeds=2, steps=30)
REPLIES = [f"def update(grad, param, state, lr, t):\n    return lr * torch.tanh({k} * grad)\n" for k in range(2, 60)]


def test_rate_bandit_prefers_reward_per_second_and_round_trips():
    bandit = RateBandit(["fast", "slow"], exploration=0.1)
    for _ in range(20):
        bandit.update("fast", 1.0, 1.0)  # one improvement a second
        bandit.update("slow", 1.0, 10.0)  # one every ten seconds
    rng = random.Random(0)
    picks = [bandit.choose(rng) for _ in range(50)]
    assert picks.count("fast") == 50
    again = RateBandit(["fast", "slow"])
    again.load(bandit.to_dict())
    assert again.rate("fast") == bandit.rate("fast") and again.n == bandit.n
    assert RateBandit(["a", "b"]).choose(rng, ["b"]) == "b"


class Held(ScriptedBackend):
    """A model that answers nothing until released (a model slower than the whole run)."""

    def __init__(self):
        super().__init__(REPLIES)
        self.release = threading.Event()

    def generate(self, request):
        self.requests.append(request)
        self.release.wait(timeout=120)
        return Generation(text=REPLIES[0], tokens_in=1, tokens_out=1, ms=1.0, finish_reason="stop")


def test_the_mutation_engine_never_waits_for_the_model(home, gate, sandbox):
    store = Store()
    backend = Held()
    config = EvolveConfig(proposer="hybrid", candidates=12, proxy=FAST, funnel=False)

    def on_event(kind, data):
        if kind == "candidate" and data["summary"]["candidates"] >= 12:
            backend.release.set()  # the budget is spent: let the model's thread end

    evo = Evolution.start(store, config, make_proposer("hybrid", backend), gate, sandbox, on_event)
    evo.run()
    rows = [r for r in store.candidates(evo.run_id) if r["origin"] != "seed"]
    assert len(rows) == 12 and backend.requests  # the model was asked, and the run went on without it
    assert not [r for r in rows if r["origin"] == "llm"]
    assert {r["origin"] for r in rows} <= {"mutate", "fit"}


def test_model_replies_join_the_population_and_prompts_show_every_source(home, gate, sandbox):
    store = Store()
    backend = ScriptedBackend(REPLIES, delay_s=0.05)
    config = EvolveConfig(proposer="hybrid", candidates=40, proxy=FAST, funnel=False)
    evo = Evolution.start(store, config, make_proposer("hybrid", backend), gate, sandbox)
    evo.run()
    rows = store.candidates(evo.run_id)
    llm = [r for r in rows if r["origin"] == "llm" and r["status"] == "evaluated"]
    others = [r for r in rows if r["origin"] in ("mutate", "fit") and r["status"] == "evaluated"]
    assert llm and others
    search = store.get_run(evo.run_id)["search"]
    members = {pid for island in search["mutate"]["islands"] for pid in island}
    assert members & {r["id"] for r in llm}  # model replies are parents for the mutation engine
    prompts = "\n".join(request.user for request in backend.requests)
    assert any(r["normalized"].strip() in prompts for r in others)  # and the model sees their programs
    bandit = search["hybrid"]["bandit"]
    assert sum(arm["n"] for arm in bandit.values()) > 0
    assert search["hybrid"]["models"]["model:scripted"]["n"] == len([r for r in rows if r["origin"] == "llm"])


def test_hybrid_resumes_after_sigkill(tmp_path):
    home = tmp_path / "home"
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(REPLIES))
    env = dict(os.environ, SYMDISC_HOME=str(home))
    args = ["--proposer", "hybrid", "--fake-replies", str(replies), "--fake-delay", "0.2", "-n", "24", "--no-funnel"]
    db = evolve_then_kill(home, args, env, proposed=8)
    with Store(db) as store:
        run = store.list_runs()[0]
        before = store.get_run(run["id"])["search"]
    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "evolve", "--resume", run["id"],
                             "--fake-replies", str(replies), "--json"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        after = store.candidates(run["id"])
        search = store.get_run(run["id"])["search"]
    assert len([r for r in after if r["origin"] != "seed"]) == 24
    assert all(r["status"] != "pending" for r in after)
    assert len([r for r in after if r["origin"] == "seed"]) == 3
    assert search["mutate"]["proposals"] >= before["mutate"]["proposals"]
    n = lambda s: sum(arm["n"] for arm in s["hybrid"]["bandit"].values())  # noqa: E731
    assert n(search) >= n(before)
