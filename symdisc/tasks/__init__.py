"""Task files: which training task a search selects on, as a plain Python file the user owns.

The contract (docs/tasks.md)::

    NAME = "my-task"   # optional: defaults to the file's stem
    STEPS = 300        # optional: the steps of a full-fidelity run (default DEFAULT_STEPS)

    def prepare(seed): ...                                # optional; before the sandbox locks down
    def train(make_optimizer, data, seed, lr, steps): ... # after; returns a score to maximise or
                                                          # a dict with "score" and other numbers

The files in this folder are the built-in tasks (``--task fmnist-noisy``), the examples to copy.
``load_task`` resolves a name or a path to a ``Task`` and validates the file (one-line UsageError
for a broken one); importing and running it for a candidate happens in the sandbox worker
(``symdisc.judge.usertask``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from symdisc.errors import UsageError

_HERE = Path(__file__).resolve().parent
DEFAULT_STEPS = 200

# A search's task stages use seeds 1000, 1001, ... (bench uses 0, 1, ...); their fractions of STEPS
# and seed counts are symdisc.config.TASK_FIDELITIES, stored with each run.
SEARCH_SEED_BASE = 1000


@dataclass(frozen=True)
class Task:
    name: str
    path: str  # absolute
    steps: int  # STEPS, or DEFAULT_STEPS
    builtin: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def worker_spec(self, seeds) -> dict:
        """What the sandbox worker needs to import and prepare it before the lock-down."""
        return {"name": self.name, "path": self.path, "seeds": [int(s) for s in seeds]}

    def module(self):
        """The imported file (in this process: only for code the user trusts, e.g. bench's torch optimizers)."""
        from symdisc.judge.usertask import TaskError, import_task

        try:
            return import_task(self.path)
        except TaskError as exc:
            raise UsageError(f"task {self.name}: {exc}") from None


def builtin_names() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in _HERE.glob("*.py") if p.stem != "__init__")


def builtin_path(name: str) -> Optional[Path]:
    path = _HERE / f"{name.replace('-', '_')}.py"
    return path if path.stem != "__init__" and path.exists() else None


def is_task_spec(spec: str) -> bool:
    """A path to a .py file or a built-in task file's name."""
    return spec.endswith(".py") or builtin_path(spec) is not None


def load_task(spec: str) -> Task:
    """A built-in name or a path to a task file, imported here and validated against the contract."""
    from symdisc.judge.usertask import TaskError, import_task

    builtin = not spec.endswith(".py")
    path = builtin_path(spec) if builtin else Path(spec)
    if path is None:
        raise UsageError(f"unknown task {spec!r}: give a .py task file or one of {', '.join(builtin_names())}")
    if not path.exists():
        raise UsageError(f"no such task file: {spec}")
    if path.is_dir():
        raise UsageError(f"{spec} is a folder, not a task file")
    try:
        module = import_task(str(path))
    except TaskError as exc:
        raise UsageError(f"task {spec}: {exc}") from None
    name = getattr(module, "NAME", None) or path.stem.replace("_", "-")
    return Task(name=name, path=str(path.resolve()), steps=getattr(module, "STEPS", None) or DEFAULT_STEPS,
                builtin=builtin)


def load_tasks(specs: list[str]) -> list[Task]:
    tasks = [load_task(s) for s in specs]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise UsageError(f"two tasks share a NAME ({', '.join(names)}); give each file its own NAME")
    return tasks


def stage_spec(tasks: list[dict], stage: str, lrs_by_task: Optional[dict] = None, fidelities: Optional[dict] = None) -> dict:
    """A cascade stage's request on task files: per task its steps (a fraction of STEPS), seeds and lr grid."""
    from symdisc.config import HALF_DECADE, TASK_FIDELITIES

    fid = (fidelities or TASK_FIDELITIES)[stage]
    out = []
    for t in tasks:
        lrs = (lrs_by_task or {}).get(t["name"]) or HALF_DECADE
        out.append({"name": t["name"], "steps": max(1, int(round(fid["fraction"] * t["steps"]))),
                    "seeds": list(range(SEARCH_SEED_BASE, SEARCH_SEED_BASE + int(fid["seeds"]))),
                    "lrs": [float(v) for v in lrs]})
    return {"tasks": out}


def worker_specs(tasks: list[dict], fidelities: Optional[dict] = None) -> list[dict]:
    """Every task with the seeds any search stage uses (prepared once, before the lock-down)."""
    from symdisc.config import TASK_FIDELITIES

    n = max(int(f["seeds"]) for f in (fidelities or TASK_FIDELITIES).values())
    return [{"name": t["name"], "path": t["path"], "seeds": list(range(SEARCH_SEED_BASE, SEARCH_SEED_BASE + n))}
            for t in tasks]


# -- standardisation over tasks ------------------------------------------------------------------
def norm_of(scores: list[float]) -> tuple[float, float]:
    """(centre, scale) of a task's scores for the run's seed rules at one stage: the median, and the
    sample standard deviation floored at 1e-3 * max(1, |median|) (seeds that tie would divide by 0)."""
    if not scores:
        return 0.0, 1.0
    s = sorted(scores)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    mean = sum(s) / n
    sd = (sum((v - mean) ** 2 for v in s) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return median, max(sd, 1e-3 * max(1.0, abs(median)))


def standardised(raw: dict, norms: dict) -> Optional[float]:
    """The mean over tasks of (score - centre) / scale; None when a task has no norm yet."""
    zs = []
    for name, score in raw.items():
        if name not in norms:
            return None
        centre, scale = norms[name]
        zs.append((score - centre) / scale)
    return sum(zs) / len(zs) if zs else None


TEMPLATE = '''"""{name}: a task file for symdisc (symdisc evolve/check/bench/calibrate --task {file}).

symdisc imports this file inside its sandbox worker. prepare(seed) runs first, while files can be
read; train(...) runs after the worker has locked itself down (no files, no network, no new
processes or threads), with the candidate optimizer behind `make_optimizer`. Keep all file reading
in prepare. Check it with: symdisc task check {file}
"""

import torch
from torch import nn

NAME = "{name}"  # optional: defaults to the file's name
STEPS = 300  # optional: training steps of a full-fidelity run (the search also uses fractions of it)


def prepare(seed: int):
    """Build or load the data for this seed (read files here, never in train). Returns anything;
    train receives it as `data`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1200, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    y = torch.sin(x @ w) + 0.1 * torch.randn(1200, 1, generator=g)
    return {{"x_train": x[:1000], "y_train": y[:1000], "x_val": x[1000:], "y_val": y[1000:]}}


def train(make_optimizer, data, seed: int, lr: float, steps: int):
    """Train `steps` steps with `make_optimizer(model.parameters(), lr)` and return the score to
    MAXIMISE (here minus the validation loss), or a dict with it under "score" plus any other
    numbers to report. Seed everything from `seed`: the same seed must give the same score."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = make_optimizer(model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.MSELoss()
    for _ in range(steps):
        idx = torch.randint(0, len(data["x_train"]), (64,), generator=order)
        optimizer.zero_grad()
        loss = loss_fn(model(data["x_train"][idx]), data["y_train"][idx])
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        val = loss_fn(model(data["x_val"]), data["y_val"]).item()
    return {{"score": -val, "val_mse": val, "train_mse": loss.item()}}
'''


def template(name: str) -> str:
    file = f"{name.replace('-', '_')}.py"
    return TEMPLATE.format(name=name, file=file)
