"""The sandbox worker: a persistent, locked-down process that runs candidate code.

Protocol: JSON lines on stdin/stdout, never pickle. The first line out is ``{"ready": ...}`` (or
``{"fatal": ...}``). Each request ``{"op": "evaluate", "code", "memory", "stages", "proxy",
"cpu_s"}`` gets one answer line. The parent (``symdisc.judge.sandbox``) owns the wall clock and kills
this whole process group when a candidate stalls; CPU time, memory, file size, open files and
process count are bounded here by rlimits, after everything the worker needs is imported.
"""

import os

# Before torch is imported: one thread, and threads that sleep instead of spinning while another
# process (llama.cpp) holds the other core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import json  # noqa: E402
import sys  # noqa: E402

NOBODY = 65534


def _lock_down(memory_mb: int) -> dict:
    import ctypes
    import resource

    applied = {}
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm_now = _vm_size_bytes()
    limit = vm_now + memory_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    applied["address_space_mb"] = limit >> 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file may grow: nothing gets written
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_NO_NEW_PRIVS = 38
        applied["no_new_privs"] = libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    except OSError:
        applied["no_new_privs"] = False
    if os.getuid() == 0:
        # As root, RLIMIT_NPROC does not bind: become nobody first (groups, then gid, then uid).
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        applied["uid"] = NOBODY
    else:
        applied["uid"] = os.getuid()
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork, no new threads
    return applied


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _set_cpu_budget(seconds: float) -> None:
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(spent + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(obj) -> None:
    sys.stdout.write(json.dumps(obj, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def _clean(obj):
    """JSON has no NaN or infinity: send them as null."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main() -> None:
    memory_mb = int(os.environ.get("SYMDISC_SANDBOX_MEMORY_MB", "2048"))
    try:
        import unicodedata  # noqa: F401  (ast.parse needs it for non-ASCII names)
        import encodings.idna  # noqa: F401

        import torch

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        from symdisc.judge import evaluate as evaluation
        from symdisc.judge import proxy  # noqa: F401  (imported before the lock-down)
        from symdisc.judge.restricted import warm_up

        warm_up()
        if os.environ.get("SYMDISC_HELDOUT"):
            from symdisc.config import HeldoutConfig
            from symdisc.judge.heldout import prepare

            given = os.environ["SYMDISC_HELDOUT"]  # "1" or the run's held-out config as JSON
            prepare(HeldoutConfig(**json.loads(given)) if given.startswith("{") else None)  # while files can be read
        evaluation.evaluate("def update(grad, param, state, lr, t):\n    return lr * grad\n",
                            stages=("probe", "proxy"), proxy={"seeds": 1, "steps": 2})
        applied = _lock_down(memory_mb)
    except BaseException as exc:  # report why, on the protocol channel
        _send({"fatal": f"{type(exc).__name__}: {exc}"})
        return
    _send({"ready": True, "pid": os.getpid(), "limits": applied})

    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            _send({"ok": False, "stage": "sandbox", "reason": "crash", "message": "bad request line"})
            continue
        op = request.get("op")
        if op == "ping":
            _send({"ok": True, "pong": True})
            continue
        if op != "evaluate":
            _send({"ok": False, "stage": "sandbox", "reason": "crash", "message": f"unknown op {op!r}"})
            continue
        _set_cpu_budget(float(request.get("cpu_s", 60)))
        try:
            answer = evaluation.evaluate(request["code"], request.get("memory", "scalar"),
                                         tuple(request.get("stages", ("probe",))), request.get("proxy"),
                                         request.get("heldout"))
        except MemoryError:
            answer = {"ok": False, "stage": "sandbox", "reason": "memory", "message": "out of memory"}
        except RecursionError:
            answer = {"ok": False, "stage": "sandbox", "reason": "recursion", "message": "recursion too deep"}
        except BaseException as exc:  # a bug in the harness: report, keep serving
            answer = {"ok": False, "stage": "sandbox", "reason": "crash",
                      "message": f"{type(exc).__name__}: {exc}"[:300]}
        _send(_clean(answer))


if __name__ == "__main__":
    main()
