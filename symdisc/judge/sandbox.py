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


class Sandbox(ChildProcess):
    """A persistent worker. Use as a context manager; ``evaluate`` never raises for candidate faults."""

    def __init__(self, timeout_s: float = 30.0, memory_mb: int = 2048, isolation: str = "auto",
                 heldout=False):
        super().__init__()
        # Load the funnel's held-out data set in the worker before lock-down: True for the default
        # stage, or a run's HeldoutConfig as a dict.
        self.heldout = heldout
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
        env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONDONTWRITEBYTECODE="1", SYMDISC_SANDBOX_MEMORY_MB=str(self.memory_mb))
        if self.heldout:
            env["SYMDISC_HELDOUT"] = json.dumps(self.heldout) if isinstance(self.heldout, dict) else "1"
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
                 timeout_s: Optional[float] = None, heldout: Optional[dict] = None) -> dict:
        """Run a candidate through the requested stages; a stalled or dead worker is a verdict."""
        timeout = timeout_s or self.timeout_s
        request = {"op": "evaluate", "code": code, "memory": memory, "stages": list(stages),
                   "proxy": proxy, "heldout": heldout, "cpu_s": timeout * 2}
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
        if stalled:
            reason, message = "timeout", f"no answer within {timeout_s:g} s; the worker was killed"
        elif code == -signal.SIGXCPU:
            reason, message = "cpu_time", "the candidate used up its CPU-time limit"
        elif code == -signal.SIGKILL:
            reason, message = "memory", "the worker was killed (out of memory?)"
        else:
            reason, message = "crash", f"the worker died (exit status {code})"
        return {"ok": False, "stage": "sandbox", "reason": reason, "message": message,
                "ms": {"sandbox": elapsed_ms}}
