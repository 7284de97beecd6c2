"""The sandbox worker: a persistent, locked-down process that runs candidate code.

Protocol: JSON lines on stdin/stdout, never pickle. The first line out is ``{"ready": ...}`` (or
``{"fatal": ...}``). Each request ``{"op": "evaluate", "code", "memory", "stages", "proxy",
"cpu_s"}`` gets one answer line. ``{"op": "train", ...}`` (symdisc bench) trains a real model with
the rule on the data set the worker loaded before its lock-down (``SYMDISC_TRAIN_DATA``), sends
``{"progress": step}`` lines as it goes (the parent's wall clock per epoch runs on them) and one
answer line at the end. ``{"op": "task_train", "code", "memory", "task", "seed", "lr", "steps"}``
runs a user's task file (``SYMDISC_TASKS``: imported and prepared before the lock-down) once with
the rule and answers with every number its ``train`` returned. The parent (``symdisc.judge.sandbox``) owns the wall clock and kills
this whole process group when a candidate stalls; CPU time, memory, file size, open files and
process count are bounded here by rlimits, after everything the worker needs is imported.
"""

import os

# Before torch is imported: one thread (bench training may ask for more: its pool is started before
# the lock-down, which forbids new threads), and threads that sleep instead of spinning while
# another process (llama.cpp) holds the other core.
THREADS = max(1, int(os.environ.get("SYMDISC_SANDBOX_THREADS", "1")))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = str(THREADS)
os.environ["MKL_NUM_THREADS"] = str(THREADS)

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


def _prepare_cascade(specs: dict) -> None:
    """Build every real-data stage's training subsets now, before the lock-down (the cascade's
    stage configs come from the parent as JSON; an empty dict is a stage turned off). A missing
    optional data set (MNIST for the audit) only turns that stage off."""
    from symdisc.judge import realdata

    specs = dict(specs)
    specs.setdefault("heldout", {})
    for stage, spec in specs.items():
        if spec is None or (stage != "heldout" and not spec):
            continue
        spec = {k: v for k, v in spec.items() if k != "lrs_override"}
        try:
            realdata.prepare(realdata.RealStage(**spec))
        except Exception:
            if stage == "heldout":
                raise
    realdata.forget_datasets()


def _load_train_data():
    """The bench's tensors (saved by the parent with torch.save, read with weights_only), and one
    warm-up training step so that every kernel, lazy import and thread exists before the lock-down."""
    path = os.environ.get("SYMDISC_TRAIN_DATA")
    if not path:
        return None
    import torch

    from symdisc.judge import training
    from symdisc.judge.harness import CheckedRule
    from symdisc.judge.restricted import compile_candidate

    data = torch.load(path, weights_only=True)
    warm = CheckedRule(compile_candidate("def update(grad, param, state, lr, t):\n    return lr * grad\n"),
                       "scalar", check_mutation=False, check_finite=False)
    n = min(len(data["x_train"]), 32)
    training.train_loop(lambda params: training.RuleOptimizer(params, warm, 1e-3), data["x_train"][:n],
                        data["y_train"][:n], data["x_eval"][:n], data["y_eval"][:n], data["model_kind"], 0, 2,
                        max(1, n // 2), 1)
    return data


def _train(request: dict, data) -> dict:
    """One bench training run of a candidate rule; a blown limit or a broken contract is a verdict."""
    if data is None:
        return {"ok": False, "stage": "sandbox", "reason": "crash", "message": "this worker holds no training data"}
    from symdisc.judge import training  # loaded with the data, before the lock-down
    from symdisc.judge.gate import check_code
    from symdisc.judge.harness import CheckedRule, classify_exception
    from symdisc.judge.restricted import CandidateError, compile_candidate

    memory = request.get("memory", "scalar")
    gated = check_code(request["code"], memory)  # never trust the parent
    if not gated.verdict.ok:
        v = gated.verdict
        return {"ok": False, "stage": "gate", "reason": v.reason, "message": v.message}
    every = max(1, int(request.get("progress_every", 10)))
    try:
        rule = CheckedRule(compile_candidate(gated.normalized), memory, check_mutation=False, check_finite=False)
        result = training.train_loop(
            lambda params: training.RuleOptimizer(params, rule, float(request["lr"])), data["x_train"],
            data["y_train"], data["x_eval"], data["y_eval"], data["model_kind"], int(request["seed"]),
            int(request["steps"]), int(request["batch"]), int(request["eval_every"]),
            lambda step: _send({"progress": step}) if step % every == 0 else None,
            str(request.get("schedule", "constant")), data.get("x_val"), data.get("y_val"),
            float(request.get("weight_decay", 0.0)))
    except CandidateError as err:
        return {"ok": False, "stage": "bench", "reason": err.reason, "message": err.message[:300]}
    except MemoryError:
        return {"ok": False, "stage": "bench", "reason": "memory", "message": "out of memory"}
    except Exception as exc:
        err = classify_exception(exc)
        return {"ok": False, "stage": "bench", "reason": err.reason, "message": err.message[:300]}
    return {"ok": True, "stage": "bench", "result": result}


def _task_train(request: dict) -> dict:
    """One run of a prepared task file's train with a candidate rule (symdisc bench, task check)."""
    from symdisc.judge.gate import check_code
    from symdisc.judge.harness import classify_exception
    from symdisc.judge.restricted import CandidateError, compile_candidate
    from symdisc.judge.usertask import TaskError, train_one

    memory = request.get("memory", "scalar")
    gated = check_code(request["code"], memory)  # never trust the parent
    if not gated.verdict.ok:
        v = gated.verdict
        return {"ok": False, "stage": "gate", "reason": v.reason, "message": v.message}
    try:
        result = train_one(compile_candidate(gated.normalized), memory, str(request["task"]), int(request["seed"]),
                           float(request["lr"]), int(request["steps"]))
    except CandidateError as err:
        return {"ok": False, "stage": "bench", "reason": err.reason, "message": err.message[:300]}
    except TaskError as exc:
        return {"ok": False, "stage": "bench", "reason": "task_error", "message": str(exc)[:400]}
    except Exception as exc:
        err = classify_exception(exc)
        return {"ok": False, "stage": "bench", "reason": err.reason, "message": err.message[:300]}
    return {"ok": True, "stage": "bench", "result": result}


def main() -> None:
    memory_mb = int(os.environ.get("SYMDISC_SANDBOX_MEMORY_MB", "2048"))
    try:
        import unicodedata  # noqa: F401  (ast.parse needs it for non-ASCII names)
        import encodings.idna  # noqa: F401

        import torch

        torch.set_num_threads(THREADS)
        torch.set_num_interop_threads(1)
        from symdisc.judge import evaluate as evaluation
        from symdisc.judge import proxy  # noqa: F401  (imported before the lock-down)
        from symdisc.judge.restricted import warm_up

        warm_up()
        if os.environ.get("SYMDISC_HELDOUT"):
            specs = json.loads(os.environ.get("SYMDISC_CASCADE") or "{}")
            given = os.environ["SYMDISC_HELDOUT"]  # "1" or the run's held-out config as JSON
            if given.startswith("{"):
                specs["heldout"] = json.loads(given)
            _prepare_cascade(specs)  # real data, read while files can be read
        if os.environ.get("SYMDISC_TASKS"):
            from symdisc.judge.usertask import prepare_tasks

            prepare_tasks(json.loads(os.environ["SYMDISC_TASKS"]))  # the user's files: import, prepare, warm up
        evaluation.evaluate("def update(grad, param, state, lr, t):\n    return lr * grad\n",
                            stages=("probe", "proxy"), proxy={"seeds": 1, "steps": 2})
        train_data = _load_train_data()  # None unless this worker serves symdisc bench
        applied = _lock_down(memory_mb)
        applied["threads"] = THREADS
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
        if op == "train":
            _set_cpu_budget(float(request.get("cpu_s", 3600)))
            _send(_clean(_train(request, train_data)))
            continue
        if op == "task_train":
            _set_cpu_budget(float(request.get("cpu_s", 3600)))
            _send(_clean(_task_train(request)))
            continue
        if op != "evaluate":
            _send({"ok": False, "stage": "sandbox", "reason": "crash", "message": f"unknown op {op!r}"})
            continue
        _set_cpu_budget(float(request.get("cpu_s", 60)))
        try:
            answer = evaluation.evaluate(request["code"], request.get("memory", "scalar"),
                                         tuple(request.get("stages", ("probe",))), request.get("proxy"),
                                         heldout=request.get("heldout"), cascade=request.get("cascade"),
                                         max_buffers=request.get("max_buffers"))
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
