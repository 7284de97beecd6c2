"""The second campaign's driver (benchmarks/campaign2.py): the winner it picks, the goals it checks
from saved bench answers, and the journal's resume (benchmarks/journal.py).

The smoke preset end to end (`python benchmarks/campaign2.py --smoke`) takes minutes (each search
scores its seed rules on both tasks before its budget starts), so it is not run here."""

import ast
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

from symdisc.search.mutations import Mutator, Types

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
spec = importlib.util.spec_from_file_location("campaign2", BENCHMARKS / "campaign2.py")
campaign2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign2)
journal = sys.modules["journal"]


def _row(id_, origin, seq, fidelity=3, rank=0.0, parent=None, status="evaluated", run="r1"):
    return {"id": id_, "run_id": run, "seq": seq, "origin": origin, "parent_id": parent, "status": status,
            "fitness": 0.5, "fidelity": fidelity, "rank_score": rank, "heldout": None, "name": f"c{id_}",
            "operator": None, "normalized": f"def update(grad, param, state, lr, t):\n    return lr * grad * {id_}\n"}


def test_winner_is_the_best_own_program_by_the_cascade_over_every_repeat():
    run1 = [_row(1, "seed", 0, rank=0.4), _row(2, "fit", 1, rank=2.0, parent=1),  # a fitted seed: a built-in still
            _row(3, "mutate", 2, fidelity=2, rank=1.5, parent=2),  # held-out only: below any stage-3 program
            _row(4, "mutate", 3, rank=0.3, parent=1),
            _row(5, "simplify", 4, rank=3.0, parent=4),  # simplify's reduction is not a search result
            _row(6, "mutate", 5, rank=9.0, status="failed")]
    run2 = [_row(11, "seed", 0, rank=0.4, run="r2"), _row(12, "mutate", 1, rank=0.2, parent=11, run="r2"),
            _row(13, "fit", 2, rank=0.35, parent=12, run="r2"),
            _row(14, "mutate", 3, rank=0.35, parent=11, run="r2")]  # ties 13: the earlier one stays
    winner = campaign2.pick_winner([("r1", run1), ("r2", run2)])
    assert (winner["id"], winner["run_id"], winner["fidelity"]) == (13, "r2", 3)
    assert winner["fitted"] and winner["code"].endswith("* 13\n")
    # a mutation of a fitted program inherits fitted constants; a mutation of a seed does not
    run2.append(_row(15, "mutate", 4, rank=0.5, parent=13, run="r2"))
    assert campaign2.pick_winner([("r1", run1), ("r2", run2)])["fitted"]
    assert not campaign2.pick_winner([("r1", run1)])["fitted"]  # 4: a seed's mutation
    assert campaign2.pick_winner([("r1", run1[:2])]) is None  # only a seed and its fit


def test_search_numbers_count_new_programs_and_improvements_in_order():
    rows = [_row(1, "seed", 0, rank=0.4), _row(2, "seed", 1, rank=0.6), _row(3, "mutate", 2, rank=0.5),
            _row(4, "mutate", 3, rank=0.7), _row(5, "mutate", 4, rank=0.65), _row(6, "fit", 5, rank=0.9, parent=2),
            _row(7, "mutate", 6, rank=0.8, status="duplicate")]
    numbers = campaign2.search_numbers(rows)
    assert numbers["new_programs"] == 3 and numbers["improvements"] == 1  # only 4 beat the seeds; 6 is a fitted seed
    assert numbers["best_own"]["id"] == 4 and numbers["best_seed"]["id"] == 2 and numbers["own_beats_seeds"]
    assert numbers["proposed"] == {"evaluated": 4, "duplicate": 1}


def _summary(finals, state=0, lr=1e-3):
    return {"final_mean": sum(finals) / len(finals), "final_std": 0.0, "early_mean": None, "lr": lr,
            "state_bytes": state, "ms_per_step": 10.0, "final_by_seed": {str(i): v for i, v in enumerate(finals)}}


def _bench(summaries, target=None):
    """A bench --json answer for one task: summaries and their paired comparisons, as bench writes them."""
    from symdisc.bench.stats import holm, paired

    names, pairs = list(summaries), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa, sb = summaries[a]["final_by_seed"], summaries[b]["final_by_seed"]
            pairs.append({"a": a, "b": b, "metric": "final_acc", **paired([sa[k] for k in sa], [sb[k] for k in sa])})
    for p, adjusted in zip(pairs, holm([p["p_t"] for p in pairs])):
        p["p_holm"] = adjusted
    return {"tasks": {"t": {"summary": summaries, "pairs": {"final": pairs, "early": []}, "target": target}},
            "campaign_command": "symdisc bench ...", "campaign_wall_s": 60.0}


def _plus(base, shifts):
    return [round(b + s, 6) for b, s in zip(base, shifts)]


SEEDS = [0.86, 0.87, 0.865, 0.872, 0.868]


def test_scalar_goals_from_saved_bench_answers(tmp_path):
    w = "candidate-9"
    main = {"adam": _summary(_plus(SEEDS, [0.032] * 5), state=8000), "adamw": _summary(_plus(SEEDS, [0.03] * 5)),
            "sign-sgd": _summary(SEEDS), "normalized-sgd": _summary(_plus(SEEDS, [0.01, 0.012, 0.009, 0.011, 0.01])),
            w: _summary(_plus(SEEDS, [0.02, 0.021, 0.019, 0.022, 0.02]))}
    other = {"adam": _summary(_plus(SEEDS, [0.05] * 5)), "sign-sgd": _summary(SEEDS),
             w: _summary(_plus(SEEDS, [-0.01, -0.012, -0.009, -0.011, -0.0105]))}  # shown worse
    (tmp_path / "bench-main.json").write_text(json.dumps(_bench(main)))
    (tmp_path / "bench-mnist-noise40.json").write_text(json.dumps(_bench(other)))
    (tmp_path / "winners.json").write_text(json.dumps({"scalar": {
        "id": 8, "bench_id": 9, "run_id": "r1", "origin": "mutate", "fidelity": 3, "rank_score": 0.7, "fitted": True,
        "code": "def update(grad, param, state, lr, t):\n    return lr * grad\n", "simplified": None}, "buffers": None}))
    args = campaign2.parse_args(["--home", str(tmp_path / "home"), "--out", str(tmp_path)])
    result = campaign2.summarize(tmp_path, args)
    checks = {c["goal"].split(" (")[0]: c for c in result["goals"]["scalar"]["checks"]}
    beat = checks["beats sign-sgd on noisy Fashion-MNIST at full size"]
    assert beat["met"] and beat["mean_diff"] == pytest.approx(0.0204) and beat["ci_low"] > 0
    assert beat["p_holm"] >= beat["p_t"]  # Holm over the class's goal tests
    assert checks["beats normalized-sgd on noisy Fashion-MNIST at full size"]["met"]
    half = next(c for c in result["goals"]["scalar"]["checks"] if c["goal"].startswith("closes half"))
    # half the measured gap: sign-sgd 0.867 and adam 0.899 -> 0.883; the winner is at 0.8874
    assert half["met"] and half["threshold"] == pytest.approx(0.883)
    figure = next(c for c in result["goals"]["scalar"]["checks"] if c["goal"].startswith("at least"))
    assert figure["met"] is True
    worse = checks["no worse than sign-sgd on mnist-noise40"]
    assert worse["met"] is False and worse["distance"].startswith("shown worse by 0.0105")
    assert not result["goals"]["scalar"]["all_met"]
    assert result["goals"]["buffers"]["winner"] is None
    text = (tmp_path / "summary.md").read_text()
    assert "MISSED: no worse than sign-sgd on mnist-noise40" in text and "## bench-main" in text


def test_buffers_goals_interval_lion_state_and_time_to_target():
    w = "candidate-21"
    target = {"reference": "adamw", "optimizers": {
        w: {"reached": 4, "seeds": 5, "median_steps": 3000, "median_seconds": 120.0, "per_seed": []},
        "adamw": {"reached": 5, "seeds": 5, "median_steps": 4000, "median_seconds": 150.0, "per_seed": []}}}
    views = {
        "bench-main": campaign2.task_view(_bench({
            "adamw": _summary(_plus(SEEDS, [0.03] * 5), state=8000), "adam": _summary(SEEDS, state=8000),
            w: _summary(_plus(SEEDS, [0.035, 0.02, 0.04, 0.025, 0.03]), state=4000)}, target)),
        "bench-subset": campaign2.task_view(_bench({
            "lion": _summary(SEEDS, state=4000), w: _summary(_plus(SEEDS, [-0.001, 0.0, -0.002, 0.001, -0.001]))})),
    }
    checks = campaign2.judge(campaign2.buffers_goals(views, w))
    within, lion, state, time = checks
    assert within["met"] and within["ci_low"] < 0 < within["ci_high"]  # not told apart from AdamW
    assert lion["met"] is False and lion["distance"] == "behind by 0.0006"
    assert state["met"] and state["value"] == 4000
    assert time["met"] is None and time["value"]["median_seconds"] == 120.0 and time["reference"] == 150.0
    # clearly below AdamW: the interval lies under zero, and by how much is said
    views["bench-main"]["pairs"]["final"] = _bench({"adamw": views["bench-main"]["summary"]["adamw"],
                                                    w: _summary(_plus(SEEDS, [0.01, 0.011, 0.009, 0.01, 0.0105]))}
                                                   )["tasks"]["t"]["pairs"]["final"]
    within = campaign2.judge(campaign2.buffers_goals(views, w))[0]
    assert within["met"] is False and within["distance"].startswith("the interval's top is 0.01")


def test_task_file_bench_is_paired_by_seed():
    step = {"kind": "task-bench", "tasks": {"lm-chars": {"optimizers": {
        "adam": {"lr": 0.01, "failure": None, "runs": [{"seed": s, "score": -2.0 + 0.01 * s} for s in range(3)]},
        "candidate-4": {"lr": 0.001, "failure": None,
                        "runs": [{"seed": s, "score": -2.1 + 0.01 * s + 0.001 * (s == 1)} for s in range(3)]}}}}}
    view = campaign2.task_view(step)
    assert view["summary"]["adam"]["final_mean"] == pytest.approx(-1.99)
    p = campaign2.pair(view, "candidate-4", "adam")
    assert p["n"] == 3 and p["mean_diff"] == pytest.approx(-0.1 + 0.001 / 3)
    assert p["ci_high"] < 0 and p["p_t"] < 0.05
    back = campaign2.pair(view, "adam", "candidate-4")
    assert back["mean_diff"] == pytest.approx(-p["mean_diff"]) and back["ci_low"] == pytest.approx(-p["ci_high"])


def test_journal_skips_finished_steps_and_keeps_a_tolerated_failure(tmp_path):
    env = journal.env(str(tmp_path / "home"))
    ok = [sys.executable, "-c", "import json; print(json.dumps({'answer': 42}))"]
    first = journal.run_step("one", ok, tmp_path, env)
    assert first["answer"] == 42 and "campaign_wall_s" in first
    # finished: its saved answer comes back and the command is not run (this one would fail)
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert journal.run_step("one", failing, tmp_path, env)["answer"] == 42
    with pytest.raises(SystemExit, match="step two failed"):
        journal.run_step("two", failing, tmp_path, env)
    assert not (tmp_path / "two.json").exists()
    assert journal.run_step("three", failing, tmp_path, env, may_fail=True)["failed"] == 3
    assert journal.run_step("three", ok, tmp_path, env, may_fail=True)["failed"] == 3  # the same path on resume
    # a stopped run is continued: resume() replaces the command
    resumed = journal.run_step("four", failing, tmp_path, env, resume=lambda: ok)
    assert resumed["answer"] == 42 and "raise SystemExit(3)" in resumed["campaign_command"]
    assert "json.dumps" in resumed["campaign_resumed_with"]


def test_smoke_preset_and_overrides():
    args = campaign2.parse_args(["--smoke", "--seeds", "3"])
    assert (args.minutes, args.repeats, args.subset, args.main_subset, args.epochs, args.tuner) == \
        (1.5, 1, 512, 512, 1.0, "none")
    assert args.seeds == 3  # an explicit option beats the preset
    assert campaign2.protocol(args) == ["--seeds", "3", "--epochs", "1", "--schedule", "warmup-cosine", "--tuner", "none"]
    full = campaign2.parse_args([])
    assert full.minutes == 12.0 and full.main_subset == 0 and "--tune-epochs" in campaign2.protocol(full)
    with pytest.raises(SystemExit):
        campaign2.parse_args(["--other-tasks", "cifar10"])


def test_a_winner_with_a_builtins_results_is_not_a_rule_of_its_own(tmp_path):
    w = "candidate-9"
    main = {"adam": _summary(_plus(SEEDS, [0.03] * 5)), "sign-sgd": _summary(SEEDS), "normalized-sgd": _summary(SEEDS),
            w: _summary(SEEDS)}  # simplified into signSGD, say: the same accuracy on every seed
    checks = campaign2.goals({"bench-main": campaign2.task_view(_bench(main))},
                             {"scalar": {"bench_id": 9}}, campaign2.parse_args(["--classes", "scalar"]))["scalar"]["checks"]
    identity, beat = checks[0], checks[1]
    assert identity["met"] is False and "sign-sgd, normalized-sgd" in identity["distance"]
    # no spread in the differences: no t-test, and a tie is no win
    assert beat["p_t"] is None and beat["met"] is False and beat["distance"] == "the same result on every seed"
    exact = [0.5, 0.625, 0.75, 0.5625, 0.6875]  # binary fractions: every difference is exactly 0.125
    main = {"sign-sgd": _summary(exact), "normalized-sgd": _summary(exact), "adam": _summary(exact),
            w: _summary([x + 0.125 for x in exact])}  # better by the same amount on every seed
    checks = campaign2.goals({"bench-main": campaign2.task_view(_bench(main))},
                             {"scalar": {"bench_id": 9}}, campaign2.parse_args(["--classes", "scalar"]))["scalar"]["checks"]
    assert checks[0]["met"] is True and checks[1]["met"] is None and "no spread" in checks[1]["distance"]


def test_lm_chars_rates_are_each_optimizers_best_trial():
    def trial(lr, scores):
        return {"kind": "task-bench", "tasks": {"lm-chars": {"optimizers": {
            name: {"lr": lr, "numbers": {"score": {"mean": v, "std": 0.0}}, "runs": []} for name, v in scores.items()}}}}

    trials = [trial(1e-3, {"adam": -2.5, "sign-sgd": -2.9, "candidate-4": float("nan")}),
              trial(1e-2, {"adam": -2.2, "sign-sgd": -2.6, "candidate-4": -3.0}),
              trial(1e-1, {"adam": -2.4, "sign-sgd": -2.7, "candidate-4": None})]
    assert campaign2.lm_choice(trials) == {"adam": (1e-2, False), "sign-sgd": (1e-2, False), "candidate-4": (1e-2, False)}
    trials[0]["tasks"]["lm-chars"]["optimizers"]["adam"]["numbers"]["score"]["mean"] = -2.0
    assert campaign2.lm_choice(trials)["adam"] == (1e-3, True)  # the best rate at the grid's edge is flagged


def test_the_run_database_travels_with_the_journal(tmp_path):
    from symdisc.store import Store

    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    out.mkdir()
    assert journal.snapshot(home, out) is None  # nothing to copy yet
    with Store(home / "symdisc.db") as store:
        run_id = store.create_run("evolve", {"memory": "buffers", "max_buffers": 1})
        first = journal.snapshot(home, out).read_bytes()
        assert journal.snapshot(home, out).read_bytes() == first  # unchanged database, unchanged file
    fresh = tmp_path / "fresh"
    assert journal.restore(fresh, out) and not journal.restore(fresh, out)  # never over a database
    with Store(fresh / "symdisc.db", create=False) as store:
        assert store.get_run(run_id)["config"]["max_buffers"] == 1
    assert not list(out.glob("*.tmp"))


def test_buffers_searches_keep_one_buffer_and_scalar_searches_no_limit(tmp_path, monkeypatch):
    commands = {}
    monkeypatch.setattr(campaign2, "run_step", lambda name, argv, out, env, resume=None: commands.setdefault(name, argv))
    args = campaign2.parse_args(["--repeats", "1", "--home", str(tmp_path), "--out", str(tmp_path)])
    campaign2.search(args, tmp_path, {})
    buffers, scalar = commands["search-buffers-0"], commands["search-scalar-0"]
    assert buffers[buffers.index("--max-buffers") + 1] == "1" and "--max-buffers" not in scalar
    assert [scalar[i + 1] for i, a in enumerate(scalar) if a == "--task"] == ["fmnist-noisy", "lm-chars"]
    unlimited = campaign2.parse_args(["--repeats", "1", "--max-buffers", "0", "--home", str(tmp_path)])
    commands.clear()
    campaign2.search(unlimited, tmp_path, {})
    assert "--max-buffers" not in commands["search-buffers-0"]


def test_a_winner_built_around_the_orthogonalisation_block_says_so():
    sgd = "def update(grad, param, state, lr, t):\n    return lr * grad\n"
    fn = ast.parse(sgd).body[0]
    body = list(fn.body)
    assert Mutator("scalar", random.Random(0))._insert_block(fn, body, Types(body, "scalar"), 0, "grad")
    orthogonalised = ast.unparse(fn)  # the engine's block, as a search inserts it
    assert campaign2.builtin_steps(orthogonalised) == ["orthogonal-sgd's Newton-Schulz orthogonalisation"]
    assert campaign2.builtin_steps(sgd) == []
    # simplify may round the block's coefficients: the search's own program still says what it was built on
    winners = {"scalar": {"bench_id": 9, "code": orthogonalised, "simplified": {"id": 9, "code": sgd}}}
    checks = campaign2.goals({}, winners, campaign2.parse_args(["--classes", "scalar"]))["scalar"]["checks"]
    stated = [c for c in checks if c["goal"] == "built around a built-in's step"]
    assert stated == [{"goal": "built around a built-in's step", "kind": "stated", "step": None, "met": None,
                       "value": "orthogonal-sgd's Newton-Schulz orthogonalisation"}]
