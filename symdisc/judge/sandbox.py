"""The parent side of the sandbox: start the worker, talk JSON lines, time it, kill it.

The worker (``sandbox/worker.py``) starts in a new session (its own process group) and, where
the machine allows, a new network namespace: ``unshare -n`` as root, else bubblewrap, else an
unprivileged user namespace. The parent owns the wall clock: past the deadline it kills the whole
process group and the next request starts a fresh worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from symdisc.judge.childproc import ChildProcess
from symdisc.contract import SCALAR
from symdisc.errors import SandboxError
from symdisc.resources import sandbox_worker_path

STARTUP_TIMEOUT_S = 120.0


def _probe_command(prefix: list) -> bool:
    try:
        return subprocess.run(prefix + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def isolation_prefix(mode: str = "auto") -> tuple[list, str]:
    """The command prefix that puts the worker in a network namespace, and its name."""
    if mode == "none":
        return [], "none"
    unshare, bwrap = shutil.which("unshare"), shutil.which("bwrap")
    if os.geteuid() == 0 and unshare and _probe_command([unshare, "-n"]):
        return [unshare, "-n"], "unshare-net"
    if bwrap:
        prefix = [bwrap, "--unshare-net", "--die-with-parent", "--dev-bind", "/", "/"]
        if _probe_command(prefix):
            return prefix, "bwrap"
    if unshare and _probe_command([unshare, "-r", "-n"]):
        return [unshare, "-r", "-n"], "userns-net"
    if mode == "require":
        raise SandboxError("no network isolation is available (need root, bubblewrap or user namespaces)")
    return [], "none"



def death_verdict(stalled: bool, code, what: str, who: str) -> tuple:
    """The reason code and message for a worker that gave no answer: stalled (killed by us), or dead
    by its CPU-time limit, by a kill (the kernel's, for memory), or otherwise."""
    if stalled:
        return "timeout", f"{what}; the worker was killed"
    if code == -signal.SIGXCPU:
        return "cpu_time", f"the {who} used up its CPU-time limit"
    if code == -signal.SIGKILL:
        return "memory", "the worker was killed (out of memory?)"
    return "crash", f"the worker died (exit status {code})"

class Sandbox(ChildProcess):
    """A persistent worker. Use as a context manager; ``evaluate`` never raises for candidate faults."""

    def __init__(self, timeout_s: float = 30.0, memory_mb: int = 2048, isolation: str = "auto",
                 heldout=False, cascade: Optional[dict] = None, threads: int = 1, tasks: Optional[list] = None):
        super().__init__()
        # task files the worker imports and prepares before lock-down: [{name, path, seeds}]
        self.tasks = list(tasks or [])
        self.threads = max(1, int(threads))
        self.extra_env: dict = {}
        # Load the funnel's held-out data set in the worker before lock-down: True for the default
        # stage, or a run's HeldoutConfig as a dict.
        self.heldout = heldout
        # every real-data stage the worker prepares before lock-down (heldout, long, audit configs)
        self.cascade = cascade
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.isolation = isolation
        self.info: dict = {}
        self.restarts = 0
        self._prefix: Optional[tuple] = None

    def start(self) -> None:
        if self._prefix is None:
            self._prefix = isolation_prefix(self.isolation)
        prefix, isolation = self._prefix
        env = dict(os.environ)
        # The worker runs as a script, so it would import whichever symdisc the interpreter finds
        # (an editable install of another checkout): make it import the same package as this process.
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        threads = str(self.threads)
        env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   PYTHONDONTWRITEBYTECODE="1", SYMDISC_SANDBOX_MEMORY_MB=str(self.memory_mb),
                   SYMDISC_SANDBOX_THREADS=threads, **self.extra_env)
        if self.heldout:
            env["SYMDISC_HELDOUT"] = json.dumps(self.heldout) if isinstance(self.heldout, dict) else "1"
            if self.cascade is None:
                from symdisc.config import CascadeConfig

                self.cascade = CascadeConfig().worker_specs(self.heldout if isinstance(self.heldout, dict) else None)
            env["SYMDISC_CASCADE"] = json.dumps(self.cascade)
        if self.tasks:
            env["SYMDISC_TASKS"] = json.dumps(self.tasks)
        try:
            self.spawn(prefix + [sys.executable, "-u", str(sandbox_worker_path())], env)
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox worker: {exc}") from exc
        line = self.read_line(STARTUP_TIMEOUT_S)
        if line is None:
            self.kill()
            raise SandboxError("the sandbox worker did not start (no ready line)")
        hello = json.loads(line)
        if "fatal" in hello:
            self.kill()
            raise SandboxError(f"the sandbox worker failed to start: {hello['fatal']}")
        self.info = dict(hello.get("limits", {}), isolation=isolation, pid=hello.get("pid"))

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def evaluate(self, code: str, memory: str = SCALAR, stages=("probe",), proxy: Optional[dict] = None,
                 timeout_s: Optional[float] = None, heldout: Optional[dict] = None,
                 cascade: Optional[dict] = None, max_buffers: Optional[int] = None) -> dict:
        """Run a candidate through the requested stages; a stalled or dead worker is a verdict."""
        timeout = timeout_s or self.timeout_s
        request = {"op": "evaluate", "code": code, "memory": memory, "stages": list(stages),
                   "proxy": proxy, "heldout": heldout, "cpu_s": timeout * 2}
        if cascade is not None:
            request["cascade"] = cascade
        if max_buffers is not None:
            request["max_buffers"] = int(max_buffers)
        return self._request(request, timeout)

    def train_task(self, code: str, memory: str, task: str, seed: int, lr: float, steps: int,
                   timeout_s: Optional[float] = None) -> dict:
        """One run of a prepared task file's ``train`` with the rule; ``result`` holds every number it
        returned (and ``seconds``). A stalled or dead worker is a verdict, as in ``evaluate``."""
        timeout = timeout_s or self.timeout_s
        request = {"op": "task_train", "code": code, "memory": memory, "task": task, "seed": int(seed),
                   "lr": float(lr), "steps": int(steps), "cpu_s": timeout * 2 * self.threads}
        return self._request(request, timeout)

    def ping(self, timeout_s: float = 5.0) -> bool:
        return bool(self._request({"op": "ping"}, timeout_s).get("pong"))

    def _request(self, request: dict, timeout_s: float) -> dict:
        if not self.alive:
            self.kill()
            self.start()
        t0 = time.perf_counter()
        line = self.read_line(timeout_s) if self.send(request) else None
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        if line is not None:
            answer = json.loads(line)
            answer.setdefault("ms", {})["sandbox"] = elapsed_ms
            return answer
        # No answer: the candidate stalled (we kill it) or killed the worker (we find out how).
        stalled = self.alive
        code = None if stalled else self.proc.returncode
        self.kill()
        self.restarts += 1
        reason, message = death_verdict(stalled, code, f"no answer within {timeout_s:g} s", "candidate")
        return {"ok": False, "stage": "sandbox", "reason": reason, "message": message,
                "ms": {"sandbox": elapsed_ms}}


class TrainingSandbox(Sandbox):
    """A worker that trains real models with a candidate rule for ``symdisc bench``.

    The data set is handed over in a file (``torch.save`` of plain tensors, read back with
    ``weights_only``) that the worker loads before its lock-down; a new data set (another seed's
    noisy labels, the tuning split) means a fresh worker. Limits: ``memory_mb`` of address space on
    top of what the worker holds after loading the data, ``threads`` intra-op threads started before
    the lock-down, and a wall clock per epoch that the parent enforces by killing the worker.
    """

    def __init__(self, memory_mb: int = 4096, threads: int = 1, epoch_timeout_s: float = 600.0,
                 isolation: str = "auto", tasks: Optional[list] = None):
        super().__init__(timeout_s=epoch_timeout_s, memory_mb=memory_mb, isolation=isolation, threads=threads,
                         tasks=tasks)
        self.epoch_timeout_s = float(epoch_timeout_s)
        self._data_key: Optional[tuple] = None
        self._folder: Optional[str] = None

    def limits(self) -> dict:
        """What the output states about the sandbox (before a worker exists: what it will get)."""
        out = {"threads": self.threads, "memory_mb": self.memory_mb, "epoch_timeout_s": self.epoch_timeout_s}
        if self.info:
            out.update({k: self.info[k] for k in ("isolation", "uid", "address_space_mb", "no_new_privs")
                        if k in self.info})
        else:
            out["isolation"] = (self._prefix or isolation_prefix(self.isolation))[1]
        return out

    def _load(self, x_train, y_train, x_eval, y_eval, model_kind: str, x_val=None, y_val=None) -> None:
        import tempfile

        import torch

        key = (x_train, y_train, x_eval, y_eval, model_kind, x_val, y_val)  # held: the same objects, the same data
        if self._data_key is not None and self.alive and all(a is b for a, b in zip(key, self._data_key)):
            return
        self.kill()
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="symdisc-train-")
            os.chmod(self._folder, 0o755)
        path = os.path.join(self._folder, "data.pt")
        data = {"x_train": x_train.contiguous(), "y_train": y_train.contiguous(), "x_eval": x_eval.contiguous(),
                "y_eval": y_eval.contiguous(), "model_kind": model_kind}
        if x_val is not None:
            data.update(x_val=x_val.contiguous(), y_val=y_val.contiguous())
        torch.save(data, path)
        os.chmod(path, 0o644)
        self.extra_env = {"SYMDISC_TRAIN_DATA": path}
        self._data_key = key
        self.start()

    def train(self, code: str, memory: str, lr: float, x_train, y_train, x_eval, y_eval, model_kind: str,
              seed: int, steps: int, batch: int, eval_every: int, on_step=None, schedule: str = "constant",
              x_val=None, y_val=None, weight_decay: float = 0.0) -> dict:
        """Train in the worker; ``on_step(step)`` as progress arrives. Never raises for the rule's
        faults: the answer's ``reason`` says which limit or rule was broken."""
        try:
            self._load(x_train, y_train, x_eval, y_eval, model_kind, x_val, y_val)
        except SandboxError as exc:
            return {"ok": False, "stage": "sandbox", "reason": "crash", "message": str(exc)[:300]}
        epoch_len = max(1, len(x_train) // batch)
        every = max(1, min(epoch_len, 10))
        budget = self.epoch_timeout_s * (steps / epoch_len + 1)
        request = {"op": "train", "code": code, "memory": memory, "lr": lr, "seed": seed, "steps": steps,
                   "batch": batch, "eval_every": eval_every, "progress_every": every, "schedule": schedule,
                   "weight_decay": weight_decay, "cpu_s": budget * self.threads * 1.5}
        if not self.send(request):
            return self._lost(False, "the worker died before training")
        epoch, epoch_t0, done = 0, time.monotonic(), 0
        while True:
            remaining = epoch_t0 + self.epoch_timeout_s - time.monotonic()
            line = self.read_line(max(0.0, remaining))
            if line is None:
                return self._lost(self.alive, f"epoch {epoch + 1} did not finish within {self.epoch_timeout_s:g} s")
            answer = json.loads(line)
            if "progress" in answer:
                step = int(answer["progress"])
                if on_step:
                    for _ in range(step - done):
                        on_step()
                done = step
                if step // epoch_len > epoch:
                    epoch, epoch_t0 = step // epoch_len, time.monotonic()
                continue
            if answer.get("ok") and on_step:
                for _ in range(max(0, len(answer["result"]["losses"]) - done)):
                    on_step()
            return answer

    def _lost(self, stalled: bool, what: str) -> dict:
        code = None if stalled else (self.proc.returncode if self.proc else None)
        self.kill()
        self._data_key = None
        self.restarts += 1
        reason, message = death_verdict(stalled, code, what, "rule")
        return {"ok": False, "stage": "sandbox", "reason": reason, "message": message}

    def close(self, grace_s: float = 3.0) -> None:
        super().close(grace_s)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._data_key = None
