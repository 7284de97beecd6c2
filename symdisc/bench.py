"""`symdisc bench`: optimizers compared on real data, with the same budget for everyone.

Every optimizer trains the same model from the same initial weights, on the same noisy labels and
the same mini-batch order for a given seed (a paired comparison); learning rates are each
optimizer's documented default, or the result of the same Optuna TPE budget on a validation split
carved from the training set (never the test set). Results are written as they finish, so Ctrl-C
keeps every finished seed.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from . import data as datasets
from .config import BenchConfig
from .errors import UsageError
from .optimizers import BUILTINS, measured_memory_class, rule_optimizer_class, state_bytes

# task -> (data set, default label-noise rate, model)
TASKS = {
    "fmnist-noisy": ("fashion-mnist", 0.2, "cnn28"),
    "fmnist": ("fashion-mnist", 0.0, "cnn28"),
    "mnist": ("mnist", 0.0, "cnn28"),
    "cifar10": ("cifar10", 0.0, "cnn32"),
}
SUITES = {"evo-optimizer": dict(tasks=("fmnist", "cifar10", "mnist"), steps=1000, subset=15_000, seeds=3)}


def make_model(kind: str) -> nn.Module:
    """A small CNN like the original experiment's (28x28 grey) or a slightly wider one for CIFAR-10."""
    if kind == "cnn28":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
    if kind == "cnn32":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
    raise ValueError(kind)


@dataclass
class Entry:
    """One optimizer in the comparison."""

    label: str
    make: Callable  # (params, lr, total_steps) -> Optimizer
    default_lr: float
    declared_class: Optional[str]
    source: str


@dataclass
class SeedResult:
    optimizer: str
    seed: int
    lr: float
    final_acc: float
    best_acc: float
    final_loss: float
    state_bytes: int
    memory_class: str
    steps_per_s: float
    diverged: bool
    curve: list = field(default_factory=list)  # [(step, epoch, test_acc)]
    losses: list = field(default_factory=list)


def resolve_entry(spec: str, store=None, lr_default: float = 1e-3) -> Entry:
    """A built-in name, an exported or contract-form .py file, a candidate id, or a run id."""
    if spec in BUILTINS:
        b = BUILTINS[spec]
        return Entry(spec, b.make, b.default_lr, b.memory_class, b.description)
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.exists():
            raise UsageError(f"no such file: {spec}")
        return _entry_from_file(path, lr_default)
    if store is None:
        raise UsageError(f"{spec!r} is not a built-in ({', '.join(BUILTINS)}) or a .py file")
    if spec.isdigit():
        row = store.get_candidate(int(spec))
    else:
        run = store.get_run(spec, kind="evolve")
        row = store.best(run["id"])
        if row is None:
            raise UsageError(f"run {run['id']} has no evaluated candidate")
    memory = (store.get_run(row["run_id"])["config"] or {}).get("memory", "scalar")
    code = _gated(row.get("normalized") or row.get("code") or "", memory, f"candidate {row['id']}")
    cls = rule_optimizer_class(code, f"candidate-{row['id']}", memory)
    return Entry(f"candidate-{row['id']}", lambda params, lr, total: cls(params, lr=lr), lr_default, memory,
                 f"run {row['run_id']}, candidate {row['id']} (proxy fitness {row.get('fitness')})")


def _gated(code: str, memory: str, what: str) -> str:
    from .gate import check_code

    result = check_code(code, memory)
    if not result.verdict.ok:
        from .contract import BUFFERS

        if memory != BUFFERS and check_code(code, BUFFERS).verdict.ok:
            return check_code(code, BUFFERS).normalized
        raise UsageError(f"{what} does not pass the gate: {result.verdict.one_line()}")
    return result.normalized


def _entry_from_file(path: Path, lr_default: float) -> Entry:
    text = path.read_text()
    if "class " in text and "Optimizer" in text:
        # An exported optimizer (or any file defining one): the user's own code, run as such.
        namespace: dict = {"__name__": f"bench_{path.stem}"}
        exec(compile(text, str(path), "exec"), namespace)
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.optim.Optimizer)
                   and v.__module__ == namespace["__name__"]]
        if not classes:
            raise UsageError(f"{path} defines no torch.optim.Optimizer subclass")
        cls = classes[0]
        return Entry(path.stem, lambda params, lr, total: cls(params, lr=lr), lr_default, None, str(path))
    code = _gated(text, "scalar", str(path))
    cls = rule_optimizer_class(code, path.stem)
    return Entry(path.stem, lambda params, lr, total: cls(params, lr=lr), lr_default, None, str(path))


# -- training -----------------------------------------------------------------------------------------
@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item()
    model.train()
    return correct / max(1, len(x))


def train(entry: Entry, lr: float, x_train, y_train, x_eval, y_eval, model_kind: str, seed: int, steps: int,
          batch: int, eval_every: int, on_step: Optional[Callable] = None) -> SeedResult:
    torch.manual_seed(seed)
    model = make_model(model_kind)  # same seed, same initial weights for every optimizer
    optimizer = entry.make(model.parameters(), lr, steps)
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    losses, curve = [], []
    n = len(x_train)
    perm = torch.randperm(n, generator=order)
    pos, epoch_len = 0, max(1, n // batch)
    diverged = False
    curve.append((0, 0.0, accuracy(model, x_eval, y_eval)))  # the curve starts at the untrained model
    train_time = 0.0
    for step in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=order), 0
        idx = perm[pos: pos + batch]
        pos += batch
        t_step = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        train_time += time.perf_counter() - t_step
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value) or value > 1e4:
            diverged = True
            curve.append((step, step / epoch_len, accuracy(model, x_eval, y_eval)))
            break
        if step % eval_every == 0 or step == steps:
            curve.append((step, step / epoch_len, accuracy(model, x_eval, y_eval)))
        if on_step:
            on_step()
    accs = [c[2] for c in curve[1:]] or [curve[0][2]]
    tail = [v for v in losses[-50:] if math.isfinite(v)]
    return SeedResult(
        optimizer=entry.label, seed=seed, lr=lr, final_acc=accs[-1], best_acc=max(accs),
        final_loss=sum(tail) / len(tail) if tail else float("nan"), state_bytes=state_bytes(optimizer),
        memory_class=measured_memory_class(optimizer), steps_per_s=len(losses) / train_time if train_time else 0.0,
        diverged=diverged, curve=curve, losses=losses)


def tune_lr(entry: Entry, trials: int, x_train, y_train, model_kind: str, steps: int, batch: int, seed: int = 0) -> float:
    """Optuna TPE over log(lr) around the default, scored on a validation split of the training set."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_val = max(1000, len(x_train) // 10)
    g = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(len(x_train), generator=g)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    x_fit, y_fit, x_val, y_val = x_train[fit_idx], y_train[fit_idx], x_train[val_idx], y_train[val_idx]

    def objective(trial):
        lr = trial.suggest_float("lr", entry.default_lr / 30, entry.default_lr * 30, log=True)
        result = train(entry, lr, x_fit, y_fit, x_val, y_val, model_kind, seed, steps, batch, eval_every=steps)
        return 0.0 if result.diverged else result.final_acc

    # Optuna samples its first 10 trials at random by default, which for budgets of ~10 would make
    # this random search; a third of the budget (at least 3) is enough to seed TPE's model.
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, trials // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"lr": entry.default_lr})  # the default is always one of the trials
    study.optimize(objective, n_trials=trials)
    return float(study.best_params["lr"])


# -- summaries ----------------------------------------------------------------------------------------
def summarize(results: list[SeedResult]) -> dict:
    by_opt: dict[str, list[SeedResult]] = {}
    for r in results:
        by_opt.setdefault(r.optimizer, []).append(r)
    out = {}
    for name, rs in by_opt.items():
        final = [r.final_acc for r in rs]
        best = [r.best_acc for r in rs]
        out[name] = {
            "seeds": len(rs), "lr": rs[0].lr,
            "final_mean": statistics.mean(final), "final_std": statistics.stdev(final) if len(final) > 1 else 0.0,
            "best_mean": statistics.mean(best), "best_std": statistics.stdev(best) if len(best) > 1 else 0.0,
            "state_bytes": max(r.state_bytes for r in rs), "memory_class": rs[0].memory_class,
            "steps_per_s": statistics.mean(r.steps_per_s for r in rs), "diverged": sum(r.diverged for r in rs),
            "final_loss": statistics.mean(r.final_loss for r in rs if math.isfinite(r.final_loss)) if any(
                math.isfinite(r.final_loss) for r in rs) else None,
        }
    return out


def verdicts(summary: dict, candidates: list[str], baselines: list[str]) -> list[str]:
    """Plain sentences: is each candidate's difference to each baseline larger than the seed spread?"""
    lines = []
    for c in candidates:
        for b in baselines:
            if c not in summary or b not in summary:
                continue
            sc, sb = summary[c], summary[b]
            diff = sc["final_mean"] - sb["final_mean"]
            spread = max(sc["final_std"], sb["final_std"])
            n = min(sc["seeds"], sb["seeds"])
            if n < 2:
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy from one seed: no spread to judge it by")
            elif abs(diff) <= spread:
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy, inside the seed-to-seed spread "
                             f"({spread:.4f}): no real difference shown")
            else:
                word = "above" if diff > 0 else "below"
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy, {word} {b} by more than the seed "
                             f"spread ({spread:.4f}) over {n} seeds")
    return lines


def evo_fitness(result: SeedResult) -> float:
    """evo-optimizer's task fitness: val accuracy + 0.05 * max(0, 1 - mean loss of the last 50 steps)."""
    loss = result.final_loss if math.isfinite(result.final_loss) else 1.0
    return result.final_acc + 0.05 * max(0.0, 1.0 - loss)


# -- files --------------------------------------------------------------------------------------------
def write_outputs(out: Path, config: BenchConfig, results: list[SeedResult], summary: dict, task: str,
                  extra: Optional[dict] = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "steps.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "loss"])
        for r in results:
            for i, loss in enumerate(r.losses, start=1):
                w.writerow([task, r.optimizer, r.seed, i, f"{loss:.6g}"])
    with open(out / "evals.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "epoch", "test_acc"])
        for r in results:
            for step, epoch, acc in r.curve:
                w.writerow([task, r.optimizer, r.seed, step, f"{epoch:.4f}", f"{acc:.6f}"])
    payload = {"config": asdict(config), "task": task, "summary": summary, **(extra or {}),
               "results": [asdict(r) for r in results]}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=float))
    files = {"steps_csv": str(out / "steps.csv"), "evals_csv": str(out / "evals.csv"),
             "results_json": str(out / "results.json")}
    png = plot(out / "test_accuracy.png", results, task)
    if png:
        files["figure"] = str(png)
    return files


def plot(path: Path, results: list[SeedResult], task: str) -> Optional[Path]:
    from .figures import mean_band_figure

    series = {}
    for name in dict.fromkeys(r.optimizer for r in results):
        runs = [r for r in results if r.optimizer == name and r.curve]
        if runs:
            length = min(len(r.curve) for r in runs)
            xs = [runs[0].curve[i][1] for i in range(length)]
            series[f"{name} ({len(runs)} seeds)"] = (xs, [[r.curve[i][2] for i in range(length)] for r in runs])
    return mean_band_figure(path, series, "epoch", "test accuracy (clean labels)", f"symdisc bench: {task}",
                            marker="o")


# -- the whole bench ----------------------------------------------------------------------------------
def prepare_task(task: str, config: BenchConfig, subset: Optional[int], seed: int):
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (one of {', '.join(TASKS)})")
    name, default_noise, model_kind = TASKS[task]
    ds = datasets.load(name, Path(config.data_dir) if config.data_dir else None)
    x_train, y_train = ds.x_train, ds.y_train
    if subset and subset < len(x_train):
        idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(20_000 + seed))[:subset]
        x_train, y_train = x_train[idx], y_train[idx]
    noise = default_noise if config.noise is None else config.noise
    if noise > 0:
        y_train = datasets.flip_labels_seeded(y_train, noise, ds.classes, seed=30_000 + seed)
    return x_train, y_train, ds, model_kind, noise


def run_task(task: str, entries: list[Entry], config: BenchConfig, lrs: dict, progress=None,
             on_result: Optional[Callable] = None, steps: Optional[int] = None, subset: Optional[int] = None):
    results: list[SeedResult] = []
    for seed in range(config.seeds):
        x_train, y_train, ds, model_kind, noise = prepare_task(task, config, subset, seed)
        epoch_len = max(1, len(x_train) // config.batch)
        total = steps or config.steps or max(1, int(round((config.epochs or 1) * epoch_len)))
        eval_every = max(1, min(total, epoch_len // max(1, config.evals_per_epoch)))
        for entry in entries:
            bar = progress.add_task(f"{task} {entry.label} seed {seed}", total=total) if progress else None
            advance = (lambda b=bar: progress.advance(b)) if progress else None
            result = train(entry, lrs[entry.label], x_train, y_train, ds.x_test, ds.y_test, model_kind, seed, total,
                           config.batch, eval_every, advance)
            if progress:
                progress.update(bar, completed=total, visible=False)
            results.append(result)
            if on_result:
                on_result(task, result)
    return results


def run_bench(config: BenchConfig, store, out: Optional[Path] = None, progress=None, say=None) -> dict:
    """Resolve, tune (optionally), train every optimizer on every seed, write files, store the run."""
    say = say or (lambda message: None)
    torch.set_num_threads(max(1, config.threads))
    entries = [resolve_entry(spec, store) for spec in config.candidates]
    entries += [resolve_entry(spec, store) for spec in config.against if spec not in config.candidates]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError("an optimizer is named twice")
    suite = SUITES.get(config.suite) if config.suite else None
    if config.suite and suite is None:
        raise UsageError(f"unknown suite {config.suite!r} (one of {', '.join(SUITES)})")
    tasks = list(suite["tasks"]) if suite else [config.task]
    if suite:
        config.seeds = suite["seeds"]
        missing = [t for t in tasks if datasets.locate(TASKS[t][0], Path(config.data_dir) if config.data_dir else None) is None]
        for t in missing:
            say(f"skipping {t}: {TASKS[t][0]} is not available ({datasets.HOW_TO_GET[TASKS[t][0]]})")
        tasks = [t for t in tasks if t not in missing]
        if not tasks:
            raise UsageError("no data set of the suite is available; see `symdisc data status`")

    run_id = store.create_run("bench", asdict(config))
    out = Path(out) if out else store.path.parent / "bench" / run_id
    all_results: dict[str, list[SeedResult]] = {t: [] for t in tasks}
    lrs_by_task: dict[str, dict] = {}
    status = "finished"
    try:
        for task in tasks:
            lrs = {}
            for e in entries:
                if e.label in config.lr:
                    lrs[e.label] = float(config.lr[e.label])
                elif config.tune:
                    x_train, y_train, _, model_kind, _ = prepare_task(task, config, suite["subset"] if suite else config.subset, 0)
                    say(f"tuning {e.label} on {task}: {config.tune} TPE trials of {config.tune_steps} steps")
                    lrs[e.label] = tune_lr(e, config.tune, x_train, y_train, model_kind, config.tune_steps, config.batch)
                else:
                    lrs[e.label] = e.default_lr
            lrs_by_task[task] = lrs

            def record(task_name, result, run_id=run_id):
                all_results[task_name].append(result)
                store.add_bench_result(run_id, task=task_name, optimizer=result.optimizer, seed=result.seed,
                                       lr=result.lr, final_acc=result.final_acc, best_acc=result.best_acc,
                                       final_loss=result.final_loss if math.isfinite(result.final_loss) else None,
                                       state_bytes=result.state_bytes, memory_class=result.memory_class,
                                       steps_per_s=result.steps_per_s, diverged=int(result.diverged),
                                       detail={"curve": result.curve})

            run_task(task, entries, config, lrs, progress, record, steps=suite["steps"] if suite else None,
                     subset=suite["subset"] if suite else config.subset)
    except KeyboardInterrupt:
        status = "interrupted"
    report = _report(config, entries, tasks, all_results, lrs_by_task, out, suite is not None)
    store.update_run(run_id, status=status, summary_json={k: v for k, v in report.items() if k != "files"} | {"files": report["files"]})
    report["id"] = run_id
    report["status"] = status
    return report


def _report(config, entries, tasks, all_results, lrs_by_task, out: Path, is_suite: bool) -> dict:
    report: dict = {"tasks": {}, "files": {}}
    candidates = [e.label for e in entries[: len(config.candidates)]]
    baselines = [e.label for e in entries[len(config.candidates):]]
    for task in tasks:
        results = all_results[task]
        if not results:
            continue
        summary = summarize(results)
        for e in entries:
            if e.label in summary:
                summary[e.label]["declared_class"] = e.declared_class
                summary[e.label]["source"] = e.source
        task_out = out / task if len(tasks) > 1 else out
        extra = {"verdicts": verdicts(summary, candidates, baselines)}
        if is_suite:
            for name in summary:
                fits = [evo_fitness(r) for r in results if r.optimizer == name]
                summary[name]["evo_fitness"] = statistics.mean(fits)
        report["tasks"][task] = {"summary": summary, "verdicts": extra["verdicts"], "lrs": lrs_by_task.get(task, {})}
        report["files"][task] = write_outputs(task_out, config, results, summary, task, extra)
    if is_suite and report["tasks"]:
        names = list(dict.fromkeys(e.label for e in entries))
        report["overall_fitness"] = {
            n: statistics.mean(report["tasks"][t]["summary"][n]["evo_fitness"] for t in report["tasks"]
                               if n in report["tasks"][t]["summary"]) for n in names
            if any(n in report["tasks"][t]["summary"] for t in report["tasks"])}
    return report
