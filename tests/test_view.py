"""`symdisc report` and `symdisc ui`: the page's data from the store, and the rendered page in Chromium."""

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.llm.fake import ScriptedBackend
from symdisc.search.funnel import funnel_report
from symdisc.search.loop import Evolution
from symdisc.search.proposers import make_proposer
from symdisc.store import Store
from symdisc.view.html import page
from symdisc.view.report import repeat_command, run_data

from tests import browser
from tests.test_evolve import GOOD_NORM, GOOD_TANH, IGNORES_LR, IMPORT_OS, NAN, SGD_RENAMED, TENSOR_STATE

CLAMP = "def update(grad, param, state, lr, t):\n    return lr * grad.clamp(-1.0, 1.0)\n"
HALF_SIGN = "def update(grad, param, state, lr, t):\n    return 0.5 * lr * torch.sign(grad)\n"
REPLIES = [GOOD_TANH, "no code here", IMPORT_OS, GOOD_NORM, SGD_RENAMED, IGNORES_LR, NAN, TENSOR_STATE, CLAMP, HALF_SIGN]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory, gate, sandbox):
    """A finished run made with the scripted backend, with held-out scores on its evaluated candidates."""
    db = tmp_path_factory.mktemp("viewhome") / "symdisc.db"
    store = Store(db)
    config = EvolveConfig(proposer="llm", backend="fake", candidates=len(REPLIES), funnel=False, proxy=ProxyConfig(seeds=2, steps=30))
    evo = Evolution.start(store, config, ScriptedBackend(REPLIES), gate, sandbox)
    evo.run()
    for k, row in enumerate(store.candidates(evo.run_id, ["evaluated"])):
        store.update_candidate(row["id"], heldout=round(0.5 + 0.03 * ((k * 7) % 5), 4))
    store.close()
    return db, evo.run_id


@pytest.fixture(scope="module")
def mutate_run(tmp_path_factory, gate, sandbox):
    """A finished run of the mutation engine (several operators), watched by the live view in log mode."""
    import io

    from rich.console import Console

    from symdisc.cli.live import EvolveView

    db = tmp_path_factory.mktemp("mutatehome") / "symdisc.db"
    store = Store(db)
    config = EvolveConfig(proposer="mutate", candidates=16, funnel=False, proxy=ProxyConfig(seeds=2, steps=30))
    config.mutation.fit_seeds, config.mutation.fit_top = False, 0.0
    log = io.StringIO()
    evo = None
    view = EvolveView(store, lambda: evo.run_id if evo else None,
                      console=Console(file=log, width=10_000, soft_wrap=True, force_terminal=False))
    evo = Evolution.start(store, config, make_proposer("mutate"), gate, sandbox, on_event=view)
    evo.run()
    stats = {by: store.proposal_stats(evo.run_id, by) for by in ("operator", "model")}
    store.close()
    return db, evo.run_id, view, log.getvalue(), stats


def _expected_tree_nodes(store, run_id, leaders=5) -> int:
    """The paths from the seeds to the 5 leaders of store.leaderboard, counted straight from the table."""
    parent = {r["id"]: r["parent_id"] for r in store.candidates(run_id)}
    nodes = set()
    for row in store.leaderboard(run_id, leaders):
        node = row["id"]
        while node is not None and node not in nodes:
            nodes.add(node)
            node = parent.get(node)
    return len(nodes)


def test_run_data_counts_outcomes_tree_and_command(scripted_run):
    db, run_id = scripted_run
    store = Store(db, create=False)
    data = run_data(store, run_id)
    rows = store.candidates(run_id)
    assert data["counts"]["candidates"] == len(rows) == 3 + len(REPLIES)
    total = data["outcomes"]["total"]
    assert sum(total.values()) == len(REPLIES)
    assert total["rejected: no_code"] == 1 and total["rejected: import"] == 1 and total["repeat"] == 1
    assert total["failed: probe"] == 1  # ignores lr
    assert sum(sum(b["counts"].values()) for b in data["outcomes"]["buckets"]) == len(REPLIES)
    assert len(data["tree"]["nodes"]) == _expected_tree_nodes(store, run_id)
    assert data["best"] == store.best(run_id)["id"]
    assert data["funnel"]["spearman"] == funnel_report(store.candidates(run_id, ["evaluated"]))["spearman"]
    proxy = [p["value"] for p in data["best_so_far"]["proxy"]]
    assert proxy == sorted(proxy) and proxy[-1] == max(r["fitness"] for r in rows if r["status"] == "evaluated")
    assert data["best_so_far"]["proxy"][0]["seed"] is True
    cmd = data["run"]["command"]
    assert cmd.startswith("symdisc evolve --fake-replies") and f"--candidates {len(REPLIES)}" in cmd and "--no-funnel" in cmd
    store.close()


def test_optional_columns_and_bench_results_are_shown(tmp_path):
    """operator/model columns (migration 6) and a bench run with its figure."""
    store = Store(tmp_path / "symdisc.db")
    run_id = store.create_run("evolve", {"model": "qwen2.5-coder-0.5b", "candidates": 3, "seed": 1, "memory": "scalar",
                                         "proposer": "llm", "funnel": True, "sampling": {"temperature": 0.7}})
    seed = store.add_candidate(run_id, 0, "seed", "evaluated", name="sgd", fitness=0.5, code="def update(): pass")
    a = store.add_candidate(run_id, 1, "llm", "evaluated", parent_id=seed, fitness=0.6, heldout=0.7, code="x")
    store.db.execute("UPDATE candidates SET operator = 'mutate', model = 'small' WHERE id = ?", (a,))
    b = store.add_candidate(run_id, 2, "llm", "rejected", stage="gate", reason="import", parent_id=a)
    store.db.execute("UPDATE candidates SET operator = 'crossover', model = 'big' WHERE id = ?", (b,))
    png = tmp_path / "test_accuracy.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    bench = store.create_run("bench", {})
    store.update_run(bench, status="finished", summary_json={"files": {"fmnist-noisy": {"figure": str(png)}}})
    for opt in (f"candidate-{a}", "adam"):
        store.add_bench_result(bench, task="fmnist-noisy", optimizer=opt, seed=0, lr=1e-3, final_acc=0.8, best_acc=0.81)
    data = run_data(store, run_id)
    assert data["columns"] == ["operator", "model"]
    groups = data["outcomes"]["groups"]
    assert groups["operator"] == {"mutate": {"new": 1}, "crossover": {"rejected: import": 1}}
    assert groups["model"] == {"small": {"new": 1}, "big": {"rejected: import": 1}}
    assert [r["optimizer"] for r in data["bench"][0]["rows"]] == [f"candidate-{a}", "adam"]
    assert data["bench"][0]["figures"][0]["src"].startswith("data:image/png;base64,")
    assert data["tree"]["nodes"] == [{"id": seed, "parent": None}, {"id": a, "parent": seed}]
    assert "--model qwen2.5-coder-0.5b" in repeat_command(store.get_run(run_id))
    html = page(data)
    assert "</script><script>" not in html.replace("</script>\n<script", "")  # data cannot close its element
    store.close()


@pytest.mark.parametrize("config, expected", [
    ({"model": "auto", "proposer": "mutate", "minutes": 5.0, "seed": 2},
     "symdisc evolve --proposer mutate --minutes 5 --seed 2"),
    ({"model": "qwen2.5-coder-0.5b", "proposer": "hybrid", "minutes": 5.0, "seed": 0},
     "symdisc evolve --model qwen2.5-coder-0.5b --proposer hybrid --minutes 5 --seed 0"),
    ({"model": "qwen2.5-coder-0.5b", "candidates": 30, "seed": 0},  # stored before proposers were chosen
     "symdisc evolve --model qwen2.5-coder-0.5b --proposer llm --candidates 30 --seed 0"),
])
def test_the_repeat_command_names_a_model_only_for_proposers_that_use_one(config, expected):
    assert repeat_command({"id": "r", "kind": "evolve", "config": config}) == expected


def test_page_data_cannot_break_out_of_its_script_element(tmp_path):
    store = Store(tmp_path / "symdisc.db")
    run_id = store.create_run("evolve", {})
    store.add_candidate(run_id, 0, "llm", "rejected", stage="gate", reason="syntax",
                        message="</script><script>alert(1)</script><!--", code=None)
    html = page(run_data(store, run_id))
    assert html.count("</script>") == 3  # the data, the options, the page's own script
    store.close()


def _check_rendered(rendered: dict, store: Store, run_id: str) -> None:
    dom = rendered["dom"]
    assert browser.element_text(dom, "js-errors") == ""
    assert rendered["console"] == [], rendered["console"]
    assert 'data-ready="1"' in dom
    assert int(browser.element_text(dom, "n-candidates")) == len(store.candidates(run_id))
    assert browser.count_class(dom, "tree-node") == _expected_tree_nodes(store, run_id)
    shown = browser.element_text(dom, "table-count")
    assert shown == f"{len(store.candidates(run_id))} of {len(store.candidates(run_id))} candidates"
    assert browser.count_class(dom, "cand-row") == len(store.candidates(run_id))
    assert rendered["screenshot"].stat().st_size > 10_000


def test_report_renders_in_chromium(scripted_run, tmp_path):
    db, run_id = scripted_run
    out = tmp_path / "report.html"
    env = {"SYMDISC_HOME": str(db.parent), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "report", run_id[:12], "-o", str(out)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = browser.render(out.as_uri(), tmp_path, "report.png")
    store = Store(db, create=False)
    _check_rendered(rendered, store, run_id)
    spearman = funnel_report(store.candidates(run_id, ["evaluated"]))["spearman"]
    assert browser.element_text(rendered["dom"], "spearman") == f"{spearman:+.3f}"
    assert browser.count_class(rendered["dom"], "scatter-point") == len(store.candidates(run_id, ["evaluated"]))
    store.close()


def test_ui_serves_run_pages_on_loopback(scripted_run, tmp_path):
    from symdisc.view.server import serve_in_thread, stop

    db, run_id = scripted_run
    server, thread = serve_in_thread(db, 0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    try:
        base = f"http://127.0.0.1:{port}"
        index = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert f'href="/run/{run_id}"' in index
        rendered = browser.render(f"{base}/run/{run_id}", tmp_path, "ui.png")
        store = Store(db, create=False)
        _check_rendered(rendered, store, run_id)
        # a running run: its JSON follows the database, and its page asks for it again
        data = json.loads(urllib.request.urlopen(f"{base}/api/run/{run_id}", timeout=10).read())
        assert data["counts"]["candidates"] == len(store.candidates(run_id))
        store.update_run(run_id, status="running")
        try:
            html = urllib.request.urlopen(f"{base}/run/{run_id}", timeout=10).read().decode()
            assert f'"live_url":"/api/run/{run_id}"' in html
        finally:
            store.update_run(run_id, status="finished")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/run/nosuchrun", timeout=10)
        assert missing.value.code == 404
        store.close()
    finally:
        stop(server, thread)
    assert not thread.is_alive()


def test_ui_stops_cleanly_on_ctrl_c(scripted_run):
    import os
    import signal
    import socket
    import time

    db, _ = scripted_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SYMDISC_HOME=str(db.parent))
    proc = subprocess.Popen([sys.executable, "-m", "symdisc.cli.app", "ui", "--port", str(port)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_view_modules_do_not_import_torch():
    code = ("import sys, symdisc.cli.app, symdisc.view.report, symdisc.view.html, symdisc.view.server; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_live_view_progress_eta_and_leaderboard_columns(scripted_run):
    import io

    from rich.console import Console

    from symdisc.cli.live import EvolveView, budget_progress

    p = budget_progress({"candidates": 50, "minutes": None}, {"candidates": 10, "elapsed_s": 20.0})
    assert p["fraction"] == 0.2 and p["label"] == "10/50 candidates" and p["eta_s"] == 80.0
    p = budget_progress({"candidates": 50, "minutes": 2}, {"candidates": 10, "elapsed_s": 90.0})
    assert p["fraction"] == 0.75 and p["eta_s"] == 30.0  # the minutes end the run first
    assert budget_progress({"candidates": None, "minutes": 1}, {"candidates": 0, "elapsed_s": 0})["eta_s"] == 60.0

    db, run_id = scripted_run
    store = Store(db, create=False)
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    view = EvolveView(store, lambda: run_id, console=console)
    view("start", {"run_id": run_id, "config": EvolveConfig(candidates=20)})
    view("candidate", {"row": store.candidates(run_id)[-1], "summary": {"candidates": 10, "elapsed_s": 5.0}})
    assert "10/20 candidates" in out.getvalue() and "left ~0:05" in out.getvalue()
    console.print(view._render())
    text = out.getvalue()
    assert "the highest cascade stage reached, then the score there" in text
    board = store.leaderboard(run_id, 5)
    lines = [line for line in text.splitlines() if "proxy" not in line]
    shown = [int(line.split()[1]) for line in lines if line.startswith("│") and line.split()[1].isdigit()]
    assert shown[:len(board)] == [r["id"] for r in board]  # the rows in the store's one order
    assert "50%" in text
    store.close()


def test_running_run_page_redraws_as_candidates_arrive(scripted_run, tmp_path, monkeypatch):
    """The page of a running run fetches its data again and redraws: a candidate that arrives after
    the page was served shows up in the rendered page (the server runs in this process, so the
    arrival is timed on the server's side: just before the page's first refresh is answered)."""
    import symdisc.view.report as report_module
    from symdisc.view.server import serve_in_thread, stop

    db, run_id = scripted_run
    store = Store(db, create=False)
    before = len(store.candidates(run_id))
    real, calls = report_module.run_data, []

    def run_data_with_an_arrival(s, rid):
        calls.append(rid)
        if len(calls) == 2:  # the first refresh after the page itself
            writer = Store(db, create=False)
            writer.add_candidate(run_id, writer.next_seq(run_id), "llm", "rejected", stage="gate", reason="syntax",
                                 message="arrived while the page was open")
            writer.close()
        return real(s, rid)

    monkeypatch.setattr(report_module, "run_data", run_data_with_an_arrival)
    store.update_run(run_id, status="running")
    server, thread = serve_in_thread(db, 0)
    try:
        rendered = browser.render(f"http://127.0.0.1:{server.server_address[1]}/run/{run_id}", tmp_path, "live.png")
    finally:
        stop(server, thread)
        row = store.db.execute("SELECT id FROM candidates WHERE run_id = ? AND message = ?",
                               (run_id, "arrived while the page was open")).fetchone()
        if row:
            store.db.execute("DELETE FROM candidates WHERE id = ?", (row[0],))
        store.update_run(run_id, status="finished")
        store.close()
    assert len(calls) >= 2, "the page never asked for fresh data"
    dom = rendered["dom"]
    assert browser.element_text(dom, "js-errors") == "" and rendered["console"] == []
    assert int(browser.element_text(dom, "n-candidates")) == before + 1
    assert "live, redrawn every" in dom


def test_a_bench_runs_page_shows_its_results_and_command(tmp_path):
    store = Store(tmp_path / "symdisc.db")
    bench = store.create_run("bench", {"candidates": ["robust-zero-state"], "against": ["adam", "sgd"],
                                       "task": "fmnist-noisy", "seeds": 3, "epochs": 3.0, "tune": 0})
    store.add_bench_result(bench, task="fmnist-noisy", optimizer="adam", seed=0, lr=1e-3, final_acc=0.8, best_acc=0.8)
    data = run_data(store, bench)
    assert [r["optimizer"] for r in data["bench"][0]["rows"]] == ["adam"]
    assert data["run"]["command"] == ("symdisc bench robust-zero-state --against adam,sgd --task fmnist-noisy "
                                      "--seeds 3 --epochs 3 --tune 0")
    store.close()


def test_run_data_has_the_proposals_of_runs_show(mutate_run):
    db, run_id, _, _, stats = mutate_run
    store = Store(db, create=False)
    data = run_data(store, run_id)
    store.close()
    operators = data["proposals"]["operator"]
    assert len(operators) >= 2 and sum(st["replies"] for st in operators.values()) == 16
    assert sum(st["new"] for st in operators.values()) == sum(c["outcome"] == "new" for c in data["candidates"])
    for name, st in operators.items():
        rate = st.pop("new_per_min")
        assert st == stats["operator"][name]
        assert rate == (round(st["new"] * 60 / st["seconds"], 2) if st["seconds"] > 0 else None)
    assert set(operators) == set(stats["operator"])
    assert {k: {f: v for f, v in st.items() if f != "new_per_min"} for k, st in data["proposals"]["model"].items()} \
        == stats["model"]


def _proposal_rows(dom: str, by: str) -> dict:
    """The rendered proposal table: key -> {column: cell text}."""
    import re

    rows = {}
    for key, cells in re.findall(rf'<tr class="proposal-row" data-by="{by}" data-key="([^"]*)">(.*?)</tr>', dom):
        rows[key] = dict(re.findall(r'<td class="num" data-col="([a-z_]+)">([^<]*)</td>', cells))
    return rows


def test_report_shows_the_operator_table_in_chromium(mutate_run, tmp_path):
    db, run_id, _, _, stats = mutate_run
    store = Store(db, create=False)
    out = tmp_path / "report.html"
    out.write_text(page(run_data(store, run_id)), encoding="utf-8")
    store.close()
    rendered = browser.render(out.as_uri(), tmp_path, "operators.png")
    dom = rendered["dom"]
    assert browser.element_text(dom, "js-errors") == "" and rendered["console"] == []
    assert "Proposals by operator" in dom
    shown = _proposal_rows(dom, "operator")
    assert set(shown) == set(stats["operator"])
    for name, st in stats["operator"].items():
        cells = shown[name]
        assert [int(cells[k]) for k in ("replies", "new", "repeats", "improvements")] == \
            [st["replies"], st["new"], st["repeats"], st["improvements"]]
        # one decimal, rounded by the page's JavaScript (ties may go either way from Python's format)
        assert re.fullmatch(r"\d+\.\d", cells["seconds"]) and abs(float(cells["seconds"]) - st["seconds"]) <= 0.05 + 1e-9
    assert _proposal_rows(dom, "model") == {}  # one model (none: mutations): no table by model


def test_the_live_view_tallies_what_each_operator_proposed(mutate_run):
    db, run_id, view, log, stats = mutate_run
    tally = view.tally.stats["operator"]
    assert set(tally) == set(stats["operator"])
    for name, st in stats["operator"].items():
        assert {k: tally[name][k] for k in ("replies", "new", "repeats", "improvements")} == \
            {k: st[k] for k in ("replies", "new", "repeats", "improvements")}
        assert tally[name]["seconds"] == pytest.approx(st["seconds"], abs=0.01)
    # a log: every proposed candidate's line names its operator, and the tally is one line at the end
    lines = log.splitlines()
    assert sum("mutate/" in line for line in lines) == 16
    end = [line for line in lines if line.startswith("symdisc: by operator: ")]
    assert len(end) == 1 and end[0] == "symdisc: by operator: " + view.tally.line()
    for name, st in stats["operator"].items():
        assert f"{name} {st['new']} new, {st['improvements']} improved" in end[0]

    # a resumed run's view starts from the stored numbers, and draws them as a table
    import io

    from rich.console import Console

    from symdisc.cli.live import EvolveView

    store = Store(db, create=False)
    out = io.StringIO()
    again = EvolveView(store, lambda: run_id, console=Console(file=out, width=200, force_terminal=False))
    again("start", {"run_id": run_id, "config": EvolveConfig(candidates=20)})
    assert again.tally.stats == stats
    again.console.print(again._render())
    store.close()
    text = out.getvalue()
    assert "by operator" in text
    for name, st in stats["operator"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"│ {name} "))
        assert [int(c) for c in row.split("│")[2:6]] == \
            [st["replies"], st["new"], st["repeats"], st["improvements"]]


def test_the_tally_counts_as_the_store_does():
    """Seeds and pending replies are not proposals; an improvement beats its parent's fitness,
    looked up once for a parent the tally has not seen; repeats and seconds per key."""
    from symdisc.cli.live import ProposalTally

    looked_up = []

    def parent_fitness(cid):
        looked_up.append(cid)
        return {1: 0.5}.get(cid)

    tally = ProposalTally(parent_fitness)

    def row(cid, status, fitness=None, parent=None, operator="insert", origin="mutate", ms=(0, 100, 900)):
        return {"id": cid, "origin": origin, "status": status, "fitness": fitness, "parent_id": parent,
                "operator": operator, "model": None, "gen_ms": ms[0], "gate_ms": ms[1], "eval_ms": ms[2]}

    tally.add(row(1, "evaluated", 0.5, origin="seed", operator=None))
    tally.add(row(2, "evaluated", 0.6, parent=1))  # beats the seed: an improvement
    tally.add(row(3, "evaluated", 0.55, parent=2))  # below its parent (0.6): new, not an improvement
    tally.add(row(4, "duplicate", parent=2, ms=(0, 100, 0)))
    tally.add(row(5, "evaluated", 0.7, parent=2, operator="delete"))
    tally.add(row(6, "pending", operator="delete"))
    tally.add(row(7, "rejected", operator="delete", ms=(0, 250, 0)))
    assert looked_up == [1]  # the seed, once; the proposed parent came from the tally itself
    assert tally.stats["operator"] == {
        "insert": {"replies": 3, "new": 2, "repeats": 1, "improvements": 1, "seconds": pytest.approx(2.1)},
        "delete": {"replies": 2, "new": 1, "repeats": 0, "improvements": 1, "seconds": pytest.approx(1.25)}}
    assert tally.stats["model"] == {}
    assert tally.line() == "delete 1 new, 1 improved, 1.2 s; insert 2 new, 1 improved, 2.1 s"
