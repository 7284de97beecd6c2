"""The campaign's summary (benchmarks/campaign.py): the issue's goal checked condition by condition."""

import importlib.util
import json
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("campaign", Path(__file__).parent.parent / "benchmarks" / "campaign.py")
campaign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign)


def _s(*finals):
    """A bench summary with these final accuracies on seeds 0, 1, 2 (as `--json` saves it)."""
    mean = sum(finals) / len(finals)
    return {"final_mean": mean, "final_std": 0.0, "best_mean": mean, "best_std": 0.0, "lr": 1e-3,
            "state_bytes": 128, "state_bytes_per_tensor": 16.0, "memory_class": "scalar", "seeds": len(finals),
            "final_by_seed": {str(i): v for i, v in enumerate(finals)}}


def _step(**summary):
    return {"tasks": {"t": {"summary": summary}}}


def _plus(base, shifts):
    return _s(*[round(v + d, 6) for v, d in zip(base, shifts)])


def test_goal_needs_every_baseline_beaten_by_a_paired_test_and_adam_matched():
    seeds = (0.80, 0.84, 0.82)  # what a seed shares: the same for every optimizer on it
    base = dict(sgd=_plus(seeds, (-0.06, -0.05, -0.07)), **{"sign-sgd": _plus(seeds, (-0.01, 0.0, -0.02)),
                                                           "robust-zero-state": _plus(seeds, (0.0, 0.01, 0.0))})
    steps = {
        "bench-fmnist-noisy-10ep-constant": _step(**base, adam=_plus(seeds, (0.05, 0.06, 0.05)),
                                                  **{"candidate-7": _plus(seeds, (0.03, 0.041, 0.032))}),
        "bench-fmnist-noisy-10ep-warmup-cosine": _step(**base, adam=_plus(seeds, (0.07, 0.081, 0.07)),
                                                       **{"candidate-7": _plus(seeds, (0.031, 0.04, 0.03))}),
    }
    picked = [{"id": 7, "strategy": "llm"}, {"id": 9, "strategy": "llm-buffers"}]
    result = campaign.goal_check(steps, picked)
    assert set(result) == {"candidate-7"}  # the buffers-class rule is not what the goal is about
    checks = result["candidate-7"]["checks"]
    beat = checks["bench-fmnist-noisy-10ep-constant: beats sgd"]
    assert beat["met"] and beat["n"] == 3 and beat["diff"] == pytest.approx(0.0943, abs=1e-4)
    assert beat["p_holm"] >= beat["p_t"]  # corrected over the rule's checks
    (adam_key,) = [k for k in checks if "not worse than adam" in k]
    assert "warmup-cosine" in adam_key and checks[adam_key]["diff"] == pytest.approx(-0.0393, abs=1e-4)
    assert not checks[adam_key]["met"]  # 4 points behind on every seed: shown worse
    assert not result["candidate-7"]["all_met"]
    # the same mean advantage, but with seed-to-seed scatter in the difference: not shown
    steps["bench-fmnist-noisy-10ep-constant"]["tasks"]["t"]["summary"]["candidate-7"] = _plus(seeds, (0.09, -0.03, 0.0))
    assert not campaign.goal_check(steps, picked)["candidate-7"]["checks"][
        "bench-fmnist-noisy-10ep-constant: beats robust-zero-state"]["met"]
    # a summary without per-seed results cannot be paired: no verdict rather than a guess
    steps["bench-fmnist-noisy-10ep-constant"]["tasks"]["t"]["summary"]["candidate-7"].pop("final_by_seed")
    assert campaign.goal_check(steps, picked)["candidate-7"]["checks"][
        "bench-fmnist-noisy-10ep-constant: beats sgd"]["met"] is None


def test_verdict_is_a_paired_test():
    seeds = (0.80, 0.84, 0.82)
    assert campaign.verdict(_plus(seeds, (0.05, 0.06, 0.05)), _s(*seeds)).startswith(">")
    assert campaign.verdict(_s(*seeds), _plus(seeds, (0.05, 0.06, 0.05))).startswith("<")
    assert campaign.verdict(_plus(seeds, (0.05, -0.04, 0.0)), _s(*seeds)).startswith("=")


def test_summary_is_written_from_saved_steps(tmp_path):
    (tmp_path / "discoveries.json").write_text(json.dumps([{"id": 7, "strategy": "genome"}]))
    (tmp_path / "bench-audit-10ep-constant.json").write_text(json.dumps(
        _step(sgd=_s(0.70, 0.71, 0.69), adam=_s(0.80, 0.81, 0.80), **{"candidate-7": _s(0.75, 0.77, 0.76)})))

    class Args:
        pass

    campaign.summarize(tmp_path, Args())
    text = (tmp_path / "summary.md").read_text()
    assert "| candidate-7 | genome |" in text and "| adam | baseline |" in text
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["goal"]["candidate-7"]["checks"]["bench-audit-10ep-constant: beats sgd"]["met"]
