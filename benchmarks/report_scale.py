"""Report at scale: a synthetic 5,000-candidate run, its report built, then loaded and drawn by Chromium.

Run: .venv/bin/python benchmarks/report_scale.py [--n 5000] [--seed 0] [--keep DIR]

The run is written straight into a temporary database (no model, no sandbox): seeds, then proposed
candidates with the mix a real run has (about 40% new, 15% repeats, 30% rejected for various
reasons, 15% failed at various stages), parents drawn from earlier evaluated candidates, code of
10-20 lines, a reply kept for the rejected ones, held-out scores for the funnel's few. Timed:
building the page's data from the store, writing the HTML, and headless Chromium opening the file
until the page has drawn itself (--dump-dom, which returns once the load event and the page's
script have run), against Chromium opening an empty page (its own start-up). The page reports how
long its script took to draw, which is read from the dumped DOM.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symdisc.store import Store  # noqa: E402
from symdisc.view.html import page  # noqa: E402
from symdisc.view.report import run_data  # noqa: E402

REASONS = ["syntax", "import", "forbidden_name", "forbidden_attr", "stateful", "no_update", "inplace", "no_code"]
FAILS = [("sandbox", "runtime"), ("sandbox", "bad_output"), ("probe", "ignores_lr"), ("probe", "no_descent"),
         ("proxy", "diverged")]


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def code_for(rng: random.Random, i: int) -> str:
    lines = ["def update(grad, param, state, lr, t):"]
    for k in range(rng.randint(8, 18)):
        lines.append(f"    v{k} = {rng.choice(['grad', 'param', 'torch.sign(grad)', 'torch.tanh(grad)'])} * "
                     f"{rng.random():.4f} + state.get('s{k % 3}', 0.0)")
    lines.append(f"    state['s0'] = 0.9 * state.get('s0', 0.0) + 0.1 * grad.norm().item() * {i % 97}")
    lines.append("    return lr * (v0 + v1) / (1.0 + state['s0'])")
    return "\n".join(lines)


def build(db: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    store = Store(db)
    run_id = store.create_run("evolve", {"model": "qwen2.5-coder-0.5b", "candidates": n, "seed": seed,
                                         "memory": "scalar", "proposer": "llm", "funnel": True,
                                         "sampling": {"temperature": 0.8, "max_tokens": 320}},
                              model="qwen2.5-coder-0.5b", backend="llamacpp")
    t0 = time.time() - n * 3.0
    evaluated: list[int] = []
    store.db.execute("BEGIN")
    for seq in range(n):
        origin = "seed" if seq < 3 else "llm"
        fields = {"code": code_for(rng, seq), "gen_ms": rng.uniform(800, 4000), "gate_ms": rng.uniform(0.2, 2),
                  "tokens_in": 900, "tokens_out": rng.randint(40, 300)}
        u = rng.random()
        if origin == "seed" or u < 0.4:
            status = "evaluated"
            fields.update(fitness=0.55 + 0.2 * rng.random() * min(1.0, seq / n + 0.3), normalized=fields["code"],
                          best_lr=rng.choice([1e-3, 1e-2, 1e-1]), state_scalars=rng.randint(0, 3), eval_ms=900.0)
            if rng.random() < 0.05:
                fields["heldout"] = fields["fitness"] + rng.gauss(0, 0.02)
        elif u < 0.55:
            status, fields["reason"], fields["stage"] = "duplicate", "repeat", "gate"
            fields["duplicate_of"] = rng.choice(evaluated) if evaluated else None
            fields["message"] = "behaves exactly like an earlier candidate; try a different idea"
        elif u < 0.85:
            status, fields["stage"], fields["reason"] = "rejected", "gate", rng.choice(REASONS)
            fields["message"] = f"the gate refused it: {fields['reason']} on line {rng.randint(1, 12)}"
            fields["response"] = "Here is a new optimizer:\n```python\n" + fields.pop("code") + "\n```\nIt is stable."
        else:
            status = "failed"
            fields["stage"], fields["reason"] = rng.choice(FAILS)
            fields["message"] = f"{fields['stage']}: {fields['reason']}"
        if origin != "seed" and evaluated:
            fields["parent_id"] = rng.choice(evaluated[-50:])
        cid = store.add_candidate(run_id, seq, origin, status, name=f"seed{seq}" if origin == "seed" else None,
                                  **{k: v for k, v in fields.items() if v is not None})
        store.db.execute("UPDATE candidates SET created_at = ? WHERE id = ?", (stamp(t0 + seq * 3.0), cid))
        if status == "evaluated":
            evaluated.append(cid)
    store.db.execute("UPDATE runs SET created_at = ? WHERE id = ?", (stamp(t0), run_id))
    store.db.execute("COMMIT")
    store.update_run(run_id, status="finished", summary_json={"candidates": n - 3, "elapsed_s": n * 3.0})
    store.close()
    return run_id


def chromium_time(url: str, profile: Path) -> tuple[float, str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise SystemExit("headless Chromium is not installed (Debian package chromium)")
    t = time.perf_counter()
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          f"--user-data-dir={profile}", "--dump-dom", url], capture_output=True, text=True,
                         timeout=300)
    return time.perf_counter() - t, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="Write the report and a screenshot into this folder.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        run_id = build(tmp / "symdisc.db", args.n, args.seed)
        print(f"synthetic run {run_id}: {args.n} candidates written in {time.perf_counter() - t:.1f} s")
        store = Store(tmp / "symdisc.db", create=False)
        data_s, html_s = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            data = run_data(store, run_id)
            data_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            html = page(data)
            out = tmp / "report.html"
            out.write_text(html, encoding="utf-8")
            html_s.append(time.perf_counter() - t)
        store.close()
        print(f"report data from the store: {min(data_s):.2f} s (best of {args.repeats}); HTML written: "
              f"{min(html_s):.2f} s; file {out.stat().st_size / 1e6:.2f} MB")
        (tmp / "empty.html").write_text("<!DOCTYPE html><html><body>empty</body></html>")
        base, load, draw = [], [], []
        for k in range(args.repeats):
            base.append(chromium_time((tmp / "empty.html").as_uri(), tmp / f"p{k}")[0])
            s, dom = chromium_time(out.as_uri(), tmp / f"p{k}")
            load.append(s)
            m = re.search(r"data read in (\d+) ms, drawn in (\d+) ms, ready (\d+) ms", dom)
            draw.append(tuple(map(int, m.groups())) if m else None)
            ok = 'data-ready="1"' in dom and re.search(r'id="js-errors"[^>]*></div>', dom) is not None
            if not ok:
                raise SystemExit("the page did not draw itself without errors")
            shown = re.search(r'id="n-candidates">(\d+)<', dom)
            assert shown and int(shown.group(1)) == args.n, shown
        print(f"headless Chromium, open the report until drawn: {min(load):.2f} s (best of {args.repeats}; "
              f"runs {', '.join(f'{x:.2f}' for x in load)}); an empty page: {min(base):.2f} s; "
              f"in the page (best run): JSON read in {min(d[0] for d in draw)} ms, drawn in {min(d[1] for d in draw)} ms, "
              f"ready {min(d[2] for d in draw)} ms after navigation began")
        print(f"so the report costs about {min(load) - min(base):.2f} s beyond the browser's start-up")
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(out, args.keep / "report-5000.html")
            exe = shutil.which("chromium")
            subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--user-data-dir={tmp / 'shot'}", "--window-size=1280,2200",
                            f"--screenshot={args.keep / 'report-5000.png'}", out.as_uri()],
                           capture_output=True, timeout=300)
            print(f"kept {args.keep / 'report-5000.html'} and {args.keep / 'report-5000.png'}")


if __name__ == "__main__":
    main()
