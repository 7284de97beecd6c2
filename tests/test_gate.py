"""The static gate (in-process and as the GateClient child process)."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from symdisc import rules
from symdisc.contract import BUFFERS, REASONS, SCALAR
from symdisc.judge.gate import check_code, check_reply
from symdisc.judge.gateproc import GateClient
from tests.matrix_rules import NEWTON_SCHULZ, NEWTON_SCHULZ_NAMED, ROW_NORMALISED

H = "def update(grad, param, state, lr, t):\n"


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- accepted ---------------------------------------------------------------------------------

VALID = {
    "sgd": rules.source("sgd"),
    "sign_sgd": rules.source("sign_sgd"),
    "robust_zero_state": rules.source("robust_zero_state"),
    "helpers_and_constants": src("""
        import torch
        import math

        BETA = 0.9
        EPS = 1e-8
        SCALE = 2 ** -3 * (1 - 0.9)


        def clip(x, limit=1.0):
            return torch.clamp(x, -limit, limit)


        def rms(x):
            return torch.sqrt(torch.mean(x * x)).item()


        def update(grad, param, state, lr, t):
            \"\"\"Clipped normalised gradient with a scalar EMA of its RMS.\"\"\"
            r = rms(grad)
            state['r'] = BETA * state.get('r', r) + (1 - BETA) * r
            step = clip(grad / (state['r'] + EPS))
            for i in range(3):
                step = 0.5 * (step + torch.tanh(step))
            return lr * step * math.sqrt(1.0 + SCALE)
        """),
    "module_docstring_and_import_only": '"""A rule."""\nimport torch\n\n' + H + "    return lr * torch.sign(grad)\n",
    "state_methods": src("""
        def update(grad, param, state, lr, t):
            n = state.setdefault('n', 0) + 1
            state['n'] = n
            state.update({'last': float(grad.norm())})
            if 'old' in state:
                state.pop('old', None)
            k = len(state)
            return lr * grad / (1.0 + 0.0 * n * k)
        """),
    "sort_values": H + "    v = torch.sort(grad.flatten()).values\n    return lr * grad / (v.abs().max() + 1e-8)\n",
    # matrix products and views of a parameter as a matrix; none stores a tensor (scalar class)
    "newton_schulz": NEWTON_SCHULZ,
    "newton_schulz_named": NEWTON_SCHULZ_NAMED,
    "row_normalised": ROW_NORMALISED,
    "matmul_augassign": H + "    g = grad.reshape(grad.shape[0], -1)\n    x = g.T\n    x @= g\n"
                            "    return lr * (g @ x).reshape(grad.shape) / (x.trace() + 1.0)\n",
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_rules_pass_in_both_memory_classes(name):
    for memory in (SCALAR, BUFFERS):
        result = check_code(VALID[name], memory)
        assert result.verdict.ok, (name, memory, result.verdict.one_line())
        assert result.normalized and "import" not in result.normalized
        assert result.ast_hash


def test_valid_rule_in_a_reply_with_prose():
    reply = "Here you go:\n```python\n" + VALID["robust_zero_state"] + "```\nHope it helps."
    result = check_reply(reply, SCALAR)
    assert result.verdict.ok, result.verdict.one_line()


def test_adam_needs_buffers():
    adam = rules.source("adam")
    scalar = check_code(adam, SCALAR).verdict
    assert not scalar.ok and scalar.reason == "stateful" and scalar.line
    assert check_code(adam, BUFFERS).verdict.ok


def test_unknown_memory_class_is_a_programming_error():
    with pytest.raises(ValueError):
        check_code(VALID["sgd"], "infinite")


# -- every reason code of the gate --------------------------------------------------------------

# (reason, reply, memory, expected line or None when the reason has no line)
REJECTED = [
    ("empty", "", SCALAR, None),
    ("junk", H + "    return lr\x00 * grad\n", SCALAR, None),
    ("no_code", "I would use Adam with a small learning rate.", SCALAR, None),
    ("syntax", H + "    return lr * (grad\n", SCALAR, 2),
    ("syntax", "```python\n" + H + "    m = state.get('m',", SCALAR, 2),  # truncated reply
    ("no_update", "def step(grad, param, state, lr, t):\n    return lr * grad\n", SCALAR, None),
    ("no_update", H + "    x = lr * grad\n", SCALAR, 1),  # never returns a value
    ("signature", "def update(g, p, s, lr, t):\n    return lr * g\n", SCALAR, 1),
    ("signature", "def update(grad, param, state, lr, t, *extra):\n    return lr * grad\n", SCALAR, 1),
    ("redefined", H + "    return lr * grad\n\n\n" + H + "    return lr * torch.sign(grad)\n", SCALAR, 5),
    ("import", "import os\n" + H + "    return lr * grad\n", SCALAR, 1),
    ("import", H + "    import math\n    return lr * grad\n", SCALAR, 2),
    ("import", "from torch import sign\n" + H + "    return lr * sign(grad)\n", SCALAR, 1),
    ("dunder", H + "    return lr * grad.__class__(grad)\n", SCALAR, 2),
    ("dunder", H + "    _x = grad\n    return lr * _x\n", SCALAR, 2),
    ("forbidden_name", H + "    return lr * eval('grad')\n", SCALAR, 2),
    ("forbidden_name", H + "    return lr * numpy.sign(grad)\n", SCALAR, 2),
    ("forbidden_attr", H + "    return lr * torch.load('x.pt')\n", SCALAR, 2),
    ("forbidden_attr", H + "    return lr * grad.numpy()\n", SCALAR, 2),
    ("forbidden_syntax", H + "    try:\n        x = grad\n    except Exception:\n        x = 0\n    return lr * x\n", SCALAR, 2),
    ("forbidden_syntax", H + "    f = lambda x: x\n    return lr * f(grad)\n", SCALAR, 2),
    ("format", H + "    k = f'{t}'\n    return lr * grad\n", SCALAR, 2),
    ("format", H + "    k = '{}'.format(t)\n    return lr * grad\n", SCALAR, 2),
    ("inplace", H + "    grad.mul_(lr)\n    return grad\n", SCALAR, 2),
    ("inplace", H + "    grad[0] = 0.0\n    return lr * grad\n", SCALAR, 2),
    ("inplace", H + "    return torch.sign(grad, out=grad)\n", SCALAR, 2),
    ("attr_assign", H + "    param.momentum = grad\n    return lr * grad\n", SCALAR, 2),
    ("stateful", H + "    state['m'] = grad\n    return lr * grad\n", SCALAR, 2),
    ("stateful", H + "    s = state\n    return lr * grad\n", SCALAR, 2),
    ("global", "CACHE = []\n" + H + "    return lr * grad\n", SCALAR, 1),
    ("global", "```python\n" + H + "    return lr * grad\n\nprint(update(1, 2, {}, 0.1, 1))\n```", SCALAR, 4),
    ("global", H + "    global X\n    return lr * grad\n", SCALAR, 2),
    ("recursion", "def h(x):\n    return h(x)\n\n\n" + H + "    return lr * h(grad)\n", SCALAR, None),
    ("recursion", "def a(x):\n    return b(x)\n\n\ndef b(x):\n    return a(x)\n\n\n" + H + "    return lr * a(grad)\n",
     SCALAR, None),
    ("loop", H + "    while True:\n        pass\n    return lr * grad\n", SCALAR, 2),
    ("loop", H + "    x = grad\n    for i in range(100000):\n        x = x + 1\n    return lr * x\n", SCALAR, 3),
    ("loop", H + "    xs = [i for i in range(3)]\n    return lr * grad\n", SCALAR, 2),
    ("too_large", H + "    return lr * grad * 10**10**10\n", SCALAR, 2),
    ("too_large", H + "    x = 123456789012\n    return lr * grad\n", SCALAR, 2),
    ("too_large", H + "    return lr * grad + torch.eye(100000).sum()\n", SCALAR, 2),
    ("too_large", H + "    return lr * grad + torch.eye(2, m=2**13).sum()\n", SCALAR, 2),
    ("too_large", H + "    return lr * grad\n" + "# padding\n" * 3000, SCALAR, None),
]

GATE_REASONS = {"empty", "junk", "no_code", "syntax", "no_update", "signature", "redefined", "import",
                "dunder", "forbidden_name", "forbidden_attr", "forbidden_syntax", "format", "inplace",
                "attr_assign", "stateful", "global", "recursion", "loop", "too_large"}


def test_every_gate_reason_has_an_example():
    assert GATE_REASONS <= set(REASONS)
    assert {case[0] for case in REJECTED} == GATE_REASONS


@pytest.mark.parametrize("reason, reply, memory, line", REJECTED,
                         ids=[f"{i:02d}-{case[0]}" for i, case in enumerate(REJECTED)])
def test_rejection_reason_and_line(reason, reply, memory, line):
    verdict = check_reply(reply, memory).verdict
    assert not verdict.ok
    assert verdict.stage == "gate"
    assert verdict.reason == reason, verdict.one_line()
    assert verdict.message
    if line is not None:
        assert verdict.line == line, verdict.one_line()


def test_truncated_reply_says_so():
    verdict = check_reply("```python\n" + H + "    m = state.get('m',", SCALAR).verdict
    assert verdict.reason == "syntax" and "truncated" in verdict.message


def test_check_code_never_raises_on_odd_strings():
    for code in ["", "\x00", "\ufeff" + H + "    return lr * grad\n", "(" * 5000, "def", "\\", "\'\'\'",
                 "\udcff" + H, H + "    return lr * grad" + " " * 30_000 + "\n"]:
        verdict = check_code(code, SCALAR).verdict
        assert verdict.ok or verdict.reason in REASONS


# -- ast_hash ---------------------------------------------------------------------------------

def test_ast_hash_ignores_local_names_comments_docstrings_and_format():
    a = src("""
        def update(grad, param, state, lr, t):
            s = torch.sign(grad)
            med = torch.median(s).item()
            state['m'] = 0.9 * state.get('m', 0.0) + 0.1 * med
            return lr / (abs(state['m']) + 1.0) * s
        """)
    b = src("""
        import torch
        # the robust rule, renamed


        def update(grad, param, state, lr, t):
            \"\"\"Docstring.\"\"\"
            direction = torch.sign(grad)   # the sign
            vote = torch.median(direction).item()

            state['m'] = 0.9*state.get('m', 0.0) + 0.1*vote
            return lr/(abs(state['m'])+1.0)*direction
        """)
    ha, hb = check_code(a).ast_hash, check_code(b).ast_hash
    assert ha and ha == hb


def test_matrix_rule_storing_a_tensor_needs_buffers():
    # A Gram matrix (or its norm, unreduced) in state is a tensor: refused in the scalar class.
    gram = H + "    g = grad.reshape(grad.shape[0], -1)\n    state['gram'] = g @ g.T\n    return lr * grad\n"
    norm = H + "    g = grad.flatten(1)\n    state['n'] = torch.linalg.matrix_norm(g)\n    return lr * grad\n"
    reduced = H + "    g = grad.flatten(1)\n    state['n'] = torch.linalg.matrix_norm(g).item()\n    return lr * grad\n"
    for code in (gram, norm):
        verdict = check_code(code, SCALAR).verdict
        assert verdict.reason == "stateful", verdict.one_line()
        assert check_code(code, BUFFERS).verdict.ok
    assert check_code(reduced, SCALAR).verdict.ok


@pytest.mark.parametrize("code, reason", [
    (H + "    return lr * torch.matrix_power(grad, 3)\n", "forbidden_attr"),
    (H + "    return lr * torch.kron(grad, grad)\n", "forbidden_attr"),
    (H + "    return lr * torch.outer(grad, grad).sum() * grad\n", "forbidden_attr"),
    (H + "    return lr * torch.linalg.inv(grad)\n", "forbidden_attr"),
    (H + "    return lr * torch.linalg.matrix_power(grad, 3)\n", "forbidden_attr"),
    (H + "    d = torch.linalg.__dict__\n    return lr * grad\n", "dunder"),
    (H + "    return lr * grad.diag()\n", "forbidden_attr"),  # only torch.diag, whose side is capped
    (H + "    return lr * grad + torch.eye(5000).sum()\n", "too_large"),
    (H + "    return lr * grad + torch.diag(grad, 9000).sum()\n", "too_large"),
], ids=["matrix_power", "kron", "outer", "linalg-inv", "linalg-matrix_power", "linalg-dict", "diag-method",
        "eye-side", "diag-offset"])
def test_matrix_functions_outside_the_allow_list(code, reason):
    verdict = check_code(code, BUFFERS).verdict
    assert verdict.reason == reason, verdict.one_line()


def test_ast_hash_tells_a_matrix_product_from_a_product():
    a = check_code(H + "    g = grad.flatten(1)\n    return lr * (g @ g.T @ g).reshape(grad.shape)\n").ast_hash
    b = check_code(H + "    g = grad.flatten(1)\n    return lr * (g * g.T * g).reshape(grad.shape)\n").ast_hash
    c = check_code(H + "    h = grad.flatten(1)\n    return lr * (h @ h.T @ h).reshape(grad.shape)\n").ast_hash
    assert a == c and a != b


def test_ast_hash_differs_for_different_programs():
    a = check_code(H + "    return lr * grad\n").ast_hash
    b = check_code(H + "    return lr * torch.sign(grad)\n").ast_hash
    c = check_code(H + "    return lr * grad * 2\n").ast_hash
    d = check_code(H + "    state['k'] = 1.0\n    return lr * grad\n").ast_hash
    e = check_code(H + "    state['j'] = 1.0\n    return lr * grad\n").ast_hash
    assert len({a, b, c, d, e}) == 5


# -- the gate process ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gate():
    with GateClient() as client:
        yield client


def test_gate_client_matches_in_process(gate):
    for reason, reply, memory, line in REJECTED[:12]:
        remote, local = gate.check(reply, memory), check_reply(reply, memory)
        assert remote.verdict == local.verdict
    reply = VALID["robust_zero_state"]  # a module docstring first: extraction starts at the code
    ok, local = gate.check(reply, SCALAR), check_reply(reply, SCALAR)
    assert ok.verdict.ok and ok.normalized == local.normalized
    assert ok.ast_hash == local.ast_hash == check_code(reply).ast_hash  # docstrings do not count


@pytest.mark.parametrize("hostile", [
    "x" * 100_000,  # 100 KB of nothing
    H + "    return " + "(" * 50_000 + "grad" + ")" * 50_000 + "\n",  # deep parentheses, 100 KB
    H + "    return " + "-" * 19_000 + "grad\n",  # deep unary nesting under the size limit
    H + "    return grad" + "[0]" * 6_000 + "\n",  # deep subscripts
    H + "    return " + "not " * 4_800 + "grad\n",
    H + "    return " + "+".join(["grad"] * 4_000) + "\n",  # a very long, left-deep expression
    "```python\n" + "def f():\n" * 20_000,  # thousands of nested functions, truncated
    "\udcff" * 1_000 + H,  # lone surrogates
], ids=["100KB-junk", "deep-parens", "deep-unary", "deep-subscript", "deep-not", "long-sum",
        "nested-defs", "surrogates"])
def test_gate_client_survives_hostile_input(gate, hostile):
    result = gate.check(hostile, SCALAR)
    assert not result.verdict.ok
    assert result.verdict.reason in REASONS
    assert gate.check(VALID["sgd"], SCALAR).verdict.ok  # and keeps answering


def test_gate_client_restarts_after_a_stall(gate):
    assert gate.check(VALID["sgd"], SCALAR).verdict.ok
    saved = gate.timeout_s
    gate.timeout_s = 0.2
    os.kill(gate.proc.pid, signal.SIGSTOP)  # a real stall: the process cannot answer at all
    try:
        result = gate.check(VALID["sgd"], SCALAR)
    finally:
        gate.timeout_s = saved
    assert not result.verdict.ok and result.verdict.reason == "timeout"
    restarts = gate.restarts
    assert gate.check(VALID["sgd"], SCALAR).verdict.ok
    assert gate.restarts == restarts


def test_gate_client_restarts_after_a_crash(gate):
    assert gate.check(VALID["sgd"], SCALAR).verdict.ok
    os.kill(gate.proc.pid, signal.SIGKILL)
    gate.proc.wait(timeout=10)
    # The dead process is noticed before sending and replaced: the caller sees a normal answer.
    assert gate.check(VALID["sign_sgd"], SCALAR).verdict.ok
    assert not gate.check("import os\n" + H + "    return lr * grad\n", SCALAR).verdict.ok
