"""The gate as a persistent child process answering JSON lines over a pipe.

A parser can be crashed or stalled by hostile input (deep nesting, pathological sizes); in a child
process that costs one restart instead of the whole run. Run it as ``python -m symdisc.judge.gateproc``.
"""

from __future__ import annotations

import gc
import json
import os
import sys

from symdisc.judge.childproc import ChildProcess
from symdisc.contract import SCALAR, Verdict, reject
from symdisc.errors import SandboxError
from symdisc.judge.gate import GateResult, check_reply

GATE_MEMORY_BYTES = 1 << 30
DEFAULT_TIMEOUT_S = 2.0
SPIN_S = 0.003  # most answers come back within this; polling saves a wake-up per check
STARTUP_TIMEOUT_S = 30.0


def serve(stdin=None, stdout=None) -> None:
    """The child side: one request per line, one answer per line, until stdin closes."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (GATE_MEMORY_BYTES, GATE_MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    # ASTs hold no reference cycles, so reference counting frees them; the cyclic collector only adds
    # pauses that show up as tail latency. Collect between requests now and then instead.
    gc.disable()
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for count, line in enumerate(stdin, start=1):
        if count % 500 == 0:
            gc.collect()
        try:
            request = json.loads(line)
            result = check_reply(request["reply"], request.get("memory", SCALAR), bool(request.get("repair")))
            answer = result.as_dict()
        except Exception as exc:  # a gate bug must not kill the gate: report it as a rejection
            answer = GateResult(reject("gate", "crash", f"gate error: {type(exc).__name__}: {exc}")).as_dict()
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


class GateClient(ChildProcess):
    """The parent side: starts the gate process, sends replies, restarts it when it dies or hangs."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__()
        self.timeout_s = timeout_s
        self.restarts = 0

    def start(self) -> None:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        try:
            self.spawn([sys.executable, "-u", "-m", "symdisc.judge.gateproc"], env)
        except OSError as exc:
            raise SandboxError(f"cannot start the gate process: {exc}") from exc
        if self.read_line(STARTUP_TIMEOUT_S) is None:
            self.kill()
            raise SandboxError("the gate process did not start")

    def __enter__(self) -> "GateClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check(self, reply: str, memory: str = SCALAR, repair: bool = False) -> GateResult:
        """Judge a raw model reply (repaired first where ``repair``: judge/repair.py). Always returns a
        result; a dead or stalled gate is a rejection."""
        if not self.alive:
            self.kill()
            self.start()
        line = self.read_line(self.timeout_s, SPIN_S) if self.send({"reply": reply, "memory": memory, "repair": repair}) else None
        if line is None:
            stalled = self.alive
            self.kill()
            self.restarts += 1
            reason, what = ("timeout", "stalled") if stalled else ("crash", "crashed")
            return GateResult(reject("gate", reason, f"the gate process {what} on this input"))
        data = json.loads(line)
        return GateResult(Verdict(**data["verdict"]), code=data.get("code"), normalized=data.get("normalized"),
                          ast_hash=data.get("ast_hash"), repairs=data.get("repairs") or [])


if __name__ == "__main__":
    serve()
