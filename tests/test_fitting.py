"""Fitted constants: the fit itself, and fitting as a source of the loop (origin fit)."""

import json
from dataclasses import asdict

import pytest

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.contract import SCALAR
from symdisc.judge.gate import check_code
from symdisc.search.fitting import fit_constants, fittable, with_values
from symdisc.search.loop import Evolution
from symdisc.search.proposers import make_proposer
from symdisc.store import Store

FAST = ProxyConfig(seeds=2, steps=30)


def test_with_values_changes_constants_and_scales_the_step():
    code = "def update(grad, param, state, lr, t):\n    b = 0.9\n    return lr * b * torch.tanh(grad * 2.0) * 2.0\n"
    assert fittable(code) == [0.9, 2.0]  # the last 2.0 only scales the step: the multiplier covers it
    assert fittable(code, dims=2) == [0.9]  # dims counts the multiplier
    out = with_values(code, [0.5, 3.0], lr_scale=3.0)
    assert "b = 0.5" in out and "grad * 3.0" in out and "return 3.0 * (lr * b" in out
    assert with_values(code, [0.9, 2.0], 1.0).count("3.0 * (") == 0
    assert check_code(out, SCALAR).verdict.ok


def test_fit_improves_a_mis_scaled_constant(sandbox):
    code = "def update(grad, param, state, lr, t):\n    return lr * (torch.sign(grad) + 5.0 * param)\n"
    calls = []

    def score(text):
        gated = check_code(text, SCALAR)
        assert gated.verdict.ok
        calls.append(text)
        answer = sandbox.evaluate(gated.normalized, SCALAR, stages=("proxy",), proxy=asdict(FAST))
        return answer["fitness"] if answer.get("ok") else None

    baseline = score(code)
    result = fit_constants(code, score, baseline=baseline, trials=12, seed=0)
    assert len(calls) == 1 + 12
    assert result["improved"] and result["fitness"] > baseline + 0.01
    assert result["values"][0] < 5.0  # the decay shrank
    assert score(result["code"]) == pytest.approx(result["fitness"])  # the code is what was scored


class Recording:
    """The run's sandbox, with every request kept."""

    def __init__(self, inner):
        self.inner, self.calls, self.heldout = inner, [], False

    def evaluate(self, code, *args, **kwargs):
        self.calls.append(kwargs)
        return self.inner.evaluate(code, *args, **kwargs)


def test_a_run_fits_its_seeds_on_the_fixed_proxy_seeds_and_stores_origin_fit(home, gate, sandbox):
    store = Store()
    config = EvolveConfig(proposer="mutate", candidates=3, proxy=FAST, funnel=False)
    config.mutation.fit_top = 0.0  # the seeds only
    recording = Recording(sandbox)
    evo = Evolution.start(store, config, make_proposer("mutate"), gate, recording)
    evo.run()
    rows = store.candidates(evo.run_id)
    seeds = {r["id"]: r for r in rows if r["origin"] == "seed"}
    fits = [r for r in rows if r["origin"] == "fit"]
    assert fits, "no seed fit improved on the proxy"
    for row in fits:
        assert row["parent_id"] in seeds and row["operator"] == "fit"
        record = json.loads(row["fit_json"])
        assert record["trials"] == config.mutation.fit_trials and record["fitness"] > record["baseline"]
        assert row["fitness"] == pytest.approx(record["fitness"])  # judged again: the stored score is the code's
        assert record["baseline"] == pytest.approx(seeds[row["parent_id"]]["fitness"])
    proxy_calls = [c for c in recording.calls if "proxy" in c]
    assert len(proxy_calls) >= len(seeds) * config.mutation.fit_trials
    assert all(c["proxy"] == asdict(FAST) for c in proxy_calls)  # the same fixed task seeds every time
    assert set(store.get_run(evo.run_id)["search"]["fit"]["done"]) == set(seeds)
