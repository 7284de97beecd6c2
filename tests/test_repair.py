"""Repair of small-model replies before the gate, and the per-run count of replies it saved."""

import json

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.contract import BUFFERS, SCALAR
from symdisc.judge.gate import check_reply
from symdisc.judge.repair import repair, saved
from symdisc.search.loop import Evolution
from symdisc.search.proposers import make_proposer
from symdisc.store import Store

FAST = ProxyConfig(seeds=2, steps=30)
H = "def update(grad, param, state, lr, t):\n"
TRUNCATED = H + "    s = torch.tanh(2.0 * grad)\n    return lr * s\n    s2 = torch.sign(grad +\n"
AFTER = H + "    return lr * torch.sign(grad)\n    x = 1\n    print(x)\n"
UNREAD = H + "    med = torch.median(torch.sign(grad)).item()\n    state['m'] = 0.8 * state['m'] + 0.2 * med\n" \
    "    return lr / (abs(state['m']) + 2.0) * torch.sign(grad)\n"


def test_trailing_lines_that_break_the_parse_are_trimmed():
    code, changes = repair(TRUNCATED)
    assert changes == ["trim: dropped 1 trailing line that did not parse"]
    assert code.rstrip().endswith("return lr * s")
    assert not check_reply(TRUNCATED, SCALAR).verdict.ok  # without repair: a syntax error
    repaired = check_reply(TRUNCATED, SCALAR, repair=True)
    assert repaired.verdict.ok and repaired.repairs == changes
    assert repair("def update(grad, param, state, lr, t):\n    return (lr *\n")[1] == []  # nothing that parses is left


def test_code_after_the_top_level_return_is_dropped():
    code, changes = repair(AFTER)
    assert changes == ["after_return: dropped 2 statements after the return"]
    assert "print" not in code and "x = 1" not in code
    assert check_reply(AFTER, SCALAR, repair=True).verdict.ok
    assert not check_reply(AFTER, SCALAR).verdict.ok  # print is a forbidden name


def test_a_state_key_read_before_any_write_reads_zero():
    code, changes = repair(UNREAD, SCALAR)
    assert changes == ["state_default: state['m'] read before any write now reads 0 until written"]
    assert "state.get('m', 0.0)" in code
    assert "abs(state['m'])" in code  # read after the write: left alone
    code, _ = repair(H + "    state['v'] += grad * grad\n    return lr * grad / (state['v'] + 1e-8) ** 0.5\n", BUFFERS)
    assert "state['v'] = state.get('v', torch.zeros_like(param)) + grad * grad" in code
    guarded = H + "    if 'm' in state:\n        x = state['m']\n    else:\n        x = 0.0\n    state['m'] = x\n" \
        "    return lr * grad\n"
    assert repair(guarded)[1] == []  # a guarded read is the program's own business


def test_saved_means_a_repair_it_needed_and_a_program_that_passes():
    assert saved(["trim: dropped 1 trailing line that did not parse"], True)
    assert not saved(["after_return: dropped 1 statement after the return"], True)
    assert not saved(["state_default: ..."], False)


def test_a_run_stores_what_repair_changed_and_counts_the_saved(home, gate, sandbox):
    from symdisc.llm.fake import ScriptedBackend

    plain = H + "    return lr * torch.tanh(grad)\n"
    store = Store()
    config = EvolveConfig(proposer="llm-independent", candidates=3, proxy=FAST, funnel=False)
    evo = Evolution.start(store, config, make_proposer("llm-independent", ScriptedBackend([UNREAD, TRUNCATED, plain])),
                          gate, sandbox)
    summary = evo.run()
    rows = [r for r in store.candidates(evo.run_id) if r["origin"] == "llm"]
    assert [r["status"] for r in rows] == ["evaluated", "evaluated", "evaluated"]
    assert json.loads(rows[0]["repairs"])[0].startswith("state_default:")
    assert json.loads(rows[1]["repairs"])[0].startswith("trim:")
    assert rows[2]["repairs"] is None
    assert rows[0]["response"] == UNREAD  # the reply itself is kept as the model wrote it
    assert summary["repairs"] == {"repaired": 2, "saved": 2}
    seeds = [r for r in store.candidates(evo.run_id) if r["origin"] == "seed"]
    assert all(r["repairs"] is None for r in seeds)
