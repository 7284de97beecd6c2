"""Replies per minute and reply tokens per second: today's one-at-a-time llama.cpp path against the
batched generator (llm/batched.py) with N = 1, 2, 4, 8 sequences, with and without shared prompt
prefixes; then end-to-end candidates per minute of a short `symdisc evolve` with and without
--parallel. One JSON line per measurement, appended as it is made (a stop loses nothing).

    flock /work/measure.lock python benchmarks/decode_throughput.py --out runs/bench/decode.jsonl

Every configuration runs in a child process of its own (so its peak RSS is its own) with the same
model, prompts, seeds, max_tokens and grammar. Prompts come from a logged run (--prompts-from DB)
or are built with symdisc's own prompting code from the built-in seed programs and typical errors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ERRORS = [
    {"stage": "gate", "reason": "syntax", "line": 3, "message": "invalid syntax"},
    {"stage": "gate", "reason": "stateful", "line": 4, "message": "state may hold only Python scalars, not tensors"},
    {"stage": "probe", "reason": "ignores_lr", "message": "the update does not scale with lr"},
    {"stage": "proxy", "reason": "bad_output", "message": "the update produced NaN or inf"},
    {"stage": "gate", "reason": "import", "line": 1, "message": "imports are not allowed"},
]


def built_prompts(n: int, seed: int = 0) -> tuple[str, list[str]]:
    """The system message and ``n`` user messages as the llm proposer builds them (best programs
    shown, last three errors), from the seed programs with made-up scores."""
    from symdisc import rules
    from symdisc.search.prompting import load_prompts, user_message

    texts = load_prompts("scalar")
    rng = random.Random(seed)
    programs = [{"id": i, "name": name, "fitness": 0.4 + 0.05 * i, "code": rules.source(name)}
                for i, name in enumerate(rules.SEEDS["scalar"])]
    users = []
    for _ in range(n):
        shown = rng.sample(programs, k=min(len(programs), rng.choice([2, 3])))
        users.append(user_message(texts, shown, rng.sample(ERRORS, k=3)))
    return texts.system_message(), users


def logged_prompts(db: str, n: int) -> tuple[str, list[str]]:
    from symdisc.search.prompting import PromptTexts
    from symdisc.store import Store

    with Store(Path(db)) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "evolve")
        config = store.get_run(run["id"])["config"]
        rows = [r for r in store.candidates(run["id"]) if r["origin"] == "llm" and r.get("prompt")]
    system = PromptTexts(**config["prompts"]).system_message()
    users = [r["prompt"] for r in rows][:n]
    return system, (users * n)[:n]


def child(spec: dict) -> dict:
    """One configuration: load, generate every prompt once, report throughput and peak RSS."""
    from symdisc.config import SamplingConfig
    from symdisc.llm import Request
    from symdisc.llm.catalog import resolve
    from symdisc.search.prompting import UPDATE_GRAMMAR

    model = resolve(spec["model"])
    system, users = (logged_prompts(spec["prompts_from"], spec["replies"]) if spec.get("prompts_from")
                     else built_prompts(spec["replies"]))
    s = SamplingConfig()  # a run's defaults
    requests = [Request(system=system, user=u, temperature=s.temperature, top_p=s.top_p, max_tokens=spec["max_tokens"],
                        repeat_penalty=s.repeat_penalty, seed=1000 + i, grammar=UPDATE_GRAMMAR)
                for i, u in enumerate(users)]
    if spec["path"] == "today":
        from symdisc.llm.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(str(model.path), n_ctx=4096, n_threads=spec["threads"])
        backend.generate(Request(system=system, user="Say hi.", max_tokens=1))  # the system prefix, as in a run
        t0 = time.perf_counter()
        gens = [backend.generate(r) for r in requests]
    else:
        from symdisc.llm.batched import BatchedLlamaBackend

        backend = BatchedLlamaBackend(str(model.path), slots=spec["n"], n_ctx=4096, n_threads=spec["threads"],
                                      share_prefixes=spec["shared"])
        if spec["shared"]:
            backend.generate(Request(system=system, user="Say hi.", max_tokens=1))
        t0 = time.perf_counter()
        gens = backend.generate_many(requests)
    wall = time.perf_counter() - t0
    tokens = sum(g.tokens_out for g in gens)
    out = dict(spec, wall_s=round(wall, 2), replies=len(gens), tokens_out=tokens,
               replies_per_min=round(len(gens) / wall * 60, 2), tokens_per_s=round(tokens / wall, 2),
               rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               prompt_tokens=sum(g.tokens_in for g in gens))
    if spec["path"] != "today":
        out["reused_tokens"] = backend.stats["reused_tokens"]
    backend.close()
    return out


def end_to_end(model: str, candidates: int, parallel: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, SYMDISC_HOME=home, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "symdisc.cli.app", "evolve", "--proposer", "llm", "--model", model, "-n", str(candidates),
               "--parallel", str(parallel), "--threads", str(threads), "--no-funnel", "--seed", "1", "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"kind": "evolve", "model": model, "parallel": parallel, "error": proc.stderr[-800:]}
        summary = json.loads(proc.stdout)
        return {"kind": "evolve", "model": model, "parallel": parallel, "candidates": summary["candidates"],
                "wall_s": round(wall, 1), "candidates_per_min": summary.get("candidates_per_min"),
                "candidates_per_min_wall": round(summary["candidates"] / wall * 60, 2),
                "statuses": summary.get("statuses"), "best_fitness": summary.get("best_fitness"), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "decode_throughput.jsonl"))
    ap.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    ap.add_argument("--ns", default="1,2,4,8")
    ap.add_argument("--configs", default=None,
                    help="explicit order instead of --ns: today, N (shared prefixes) or Nu (unshared), e.g. today,4,8,4u")
    ap.add_argument("--second-configs", default=None, help="--configs for the models after the first")
    ap.add_argument("--replies", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-unshared", action="store_true", help="skip the runs without shared prefixes")
    ap.add_argument("--evolve", type=int, default=30, help="candidates per end-to-end evolve (0: skip)")
    ap.add_argument("--evolve-parallel", default="1,4")
    ap.add_argument("--evolve-after", type=int, default=None,
                    help="run the end-to-end evolves after this many configs of the first model (default: after all)")
    ap.add_argument("--prompts-from", default=None, help="a run database whose latest evolve run's prompts to use")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def record(row: dict) -> None:
        row = dict(row, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), load=os.getloadavg()[0])
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    for model in args.models.split(","):
        base = dict(kind="decode", model=model, replies=args.replies, max_tokens=args.max_tokens, threads=args.threads,
                    prompts_from=args.prompts_from)
        configs = args.configs
        if args.second_configs and model != args.models.split(",")[0]:
            configs = args.second_configs
        if configs:
            specs = [dict(base, path="today", n=1, shared=True) if c == "today" else
                     dict(base, path="batched", n=int(c.rstrip("u")), shared=not c.endswith("u"))
                     for c in configs.split(",")]
        else:
            specs = [dict(base, path="today", n=1, shared=True)]
            for n in [int(x) for x in args.ns.split(",")]:
                specs.append(dict(base, path="batched", n=n, shared=True))
                if not args.no_unshared:
                    specs.append(dict(base, path="batched", n=n, shared=False))
        first = model == args.models.split(",")[0]
        after = len(specs) if args.evolve_after is None else args.evolve_after

        def evolves() -> None:
            for parallel in [int(x) for x in args.evolve_parallel.split(",")]:
                record(end_to_end(model, args.evolve, parallel, args.threads))

        for i, spec in enumerate(specs):
            if args.evolve and first and i == after:
                evolves()
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            record(json.loads(lines[-1]) if proc.returncode == 0 and lines
                   else dict(spec, error=(proc.stderr or proc.stdout)[-800:]))
        if args.evolve and first and after >= len(specs):
            evolves()


if __name__ == "__main__":
    main()
