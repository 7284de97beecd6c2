"""Hostile candidates: each is rejected by a known layer, and nothing escapes.

Layers, outermost first:
- ``gate``: the static AST allow-list (symdisc.judge.gate), run by the parent *and* again by the worker;
- ``runtime``: the sandbox worker's RestrictedPython guards and the harness's per-call checks
  (symdisc.judge.restricted, symdisc.judge.harness, symdisc.judge.probes);
- ``os``: the worker's operating-system limits (wall clock, CPU time, address space).

For every case the test asserts the verdict and reason, that the same Sandbox still passes a valid
rule afterwards, that no file was written (a canary path) and that nothing connected to a
listening localhost socket. The second half bypasses the gate on purpose and checks that the
runtime guards alone still refuse the classic escapes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from symdisc import rules
from symdisc.contract import BUFFERS, REASONS, SCALAR
from symdisc.judge.extract import extract_code
from symdisc.judge.gate import check_reply
from symdisc.judge.harness import CheckedRule
from symdisc.judge.restricted import CandidateError, compile_candidate
from symdisc.judge.sandbox import Sandbox
from tests.matrix_rules import NEWTON_SCHULZ, NEWTON_SCHULZ_NAMED

TIMEOUT_S = 3.0
H = "def update(grad, param, state, lr, t):\n"
SGD = rules.source("sgd")
CANARY = Path(f"/tmp/symdisc-canary-{os.getpid()}")  # short: string constants are limited to 64


@dataclass
class Case:
    id: str
    code: str
    layer: str  # "gate" | "runtime" | "os"
    reasons: tuple  # acceptable reason codes (most cases have exactly one)
    memory: str = SCALAR


def body(*lines: str) -> str:
    """An update function with the given body lines."""
    return H + "".join(f"    {line}\n" for line in lines)


C = Case
CASES = [
    # -- import and attribute escapes ------------------------------------------------------------
    C("import-os", "import os\n" + body("os.system('touch CANARY')", "return lr * grad"), "gate", ("import",)),
    C("from-import", "from os import system\n" + body("system('touch CANARY')", "return lr * grad"), "gate", ("import",)),
    C("import-in-function", body("import subprocess", "subprocess.run(['touch', 'CANARY'])", "return lr * grad"),
      "gate", ("import",)),
    C("dunder-import", body("__import__('os').system('touch CANARY')", "return lr * grad"), "gate", ("dunder", "forbidden_attr")),
    C("torch-os", body("torch.os.system('touch CANARY')", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("torch-_C", body("x = torch._C._get_tracing_state()", "return lr * grad"), "gate", ("dunder",)),
    C("torch-ops", body("return torch.ops.aten.mul(grad, lr)"), "gate", ("forbidden_attr",)),
    C("torch-nested-module", body("return lr * torch.nn.functional.relu(grad)"), "gate", ("forbidden_attr",)),
    C("class-subclasses", body("cls = grad.__class__.__mro__[-1].__subclasses__()", "return lr * grad"),
      "gate", ("dunder",)),
    C("function-globals", body("g = update.__globals__", "return lr * grad"), "gate", ("dunder",)),
    C("builtins-dict", body("b = torch.__dict__['os']", "return lr * grad"), "gate", ("dunder",)),
    C("getattr-runtime-string", body("name = 'o' + 's'", "m = getattr(torch, name)", "m.system('touch CANARY')", "return lr * grad"),
      "gate", ("forbidden_name",)),
    C("vars-runtime-string", body("m = vars(torch)['o' + 's']", "return lr * grad"), "gate", ("forbidden_name",)),
    C("eval", body("eval(\"__import__('os').system('touch CANARY')\")", "return lr * grad"), "gate", ("forbidden_name",)),
    C("exec", body("exec('import os')", "return lr * grad"), "gate", ("forbidden_name",)),
    C("compile-builtin", body("c = compile('1', 'x', 'eval')", "return lr * grad"), "gate", ("forbidden_name",)),
    C("str-format-escape", body("s = '{0.__class__.__init__.__globals__}'.format(grad)", "return lr * grad"),
      "gate", ("format",)),
    C("fstring-escape", body("s = f'{grad.__class__}'", "return lr * grad"), "gate", ("format",)),
    C("percent-format", body("s = '%s' % grad", "return lr * grad"), "gate", ("format",)),
    C("torch-load-pickle", body("w = torch.load('CANARY')", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("pickle-loads", body("x = pickle.loads(b'cos\\nsystem\\n')", "return lr * grad"), "gate",
      ("forbidden_attr", "forbidden_name")),
    C("numpy", body("a = grad.numpy()", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("tensor-data-storage", body("s = grad.data.untyped_storage()", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("unicode-homoglyph-eval", body("ｅｖａｌ('1')", "return lr * grad"), "gate", ("forbidden_name",)),
    C("unicode-homoglyph-attr", body("a = grad.ｎｕｍｐｙ()", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("type-builtin", body("T = type(grad)", "return lr * grad"), "gate", ("forbidden_name",)),
    C("decorator", "@torch.compile\n" + body("return lr * grad"), "gate", ("forbidden_syntax",)),
    # -- references where nothing runs them: the gate judges the whole text --------------------------
    C("annotation-param", "def update(grad: torch.os.system('touch CANARY'), param, state, lr, t):\n"
      "    return lr * grad\n", "gate", ("forbidden_attr",)),
    C("annotation-return", "def update(grad, param, state, lr, t) -> __import__('os').system('touch CANARY'):\n"
      "    return lr * grad\n", "gate", ("dunder", "forbidden_attr")),
    C("annotation-annassign", body("x: torch.os.system('touch CANARY') = lr * grad", "return x"), "gate",
      ("forbidden_attr",)),
    C("annotation-call", "def update(grad: open('CANARY', 'w'), param, state, lr, t):\n    return lr * grad\n",
      "gate", ("forbidden_name",)),
    C("annotation-helper", "def h(x: torch.hub.load('x')):\n    return x\n\n\n" + body("return lr * h(grad)"),
      "gate", ("forbidden_attr",)),
    C("annotation-not-a-type", "def update(grad: lr * 2, param, state, lr, t):\n    return lr * grad\n", "gate",
      ("forbidden_syntax",)),
    C("default-helper", "def h(x, y=torch.os.system('touch CANARY')):\n    return x\n\n\n" + body("return lr * h(grad)"),
      "gate", ("stateful", "forbidden_attr")),
    C("default-update", "def update(grad, param, state, lr, t=torch.os.getpid()):\n    return lr * grad\n", "gate",
      ("stateful", "forbidden_attr")),
    C("decorator-helper", "@torch.os.system\ndef h(x):\n    return x\n\n\n" + body("return lr * h(grad)"), "gate",
      ("forbidden_syntax", "forbidden_attr")),
    C("loop-variable-dunder", body("x = grad", "for __x in range(3):", "    x = x + 1", "return lr * x"), "gate",
      ("dunder",)),

    # -- resource attacks ----------------------------------------------------------------------------
    C("infinite-while", body("while True:", "    pass", "return lr * grad"), "gate", ("loop",)),
    C("huge-range", body("x = grad", "for i in range(10**9):", "    x = x + 1", "return lr * x"), "gate", ("loop",)),
    C("nested-loops", body("x = grad", "for i in range(1000):", "    for j in range(1000):", "        x = x + 1",
                           "return lr * x"), "gate", ("loop",)),
    C("torch-zeros-bomb", body("z = torch.zeros(100000, 100000)", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("repeat-bomb", body("z = grad.repeat(100000, 100000)", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("outer-bomb", body("z = torch.outer(grad.flatten(), grad.flatten())", "return lr * grad"), "gate",
      ("forbidden_attr",)),
    C("kron-bomb", body("z = torch.kron(grad, grad)", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("matrix-power", body("z = torch.matrix_power(grad.reshape(grad.shape[0], -1), 1000)", "return lr * grad"), "gate",
      ("forbidden_attr",)),
    C("linalg-matrix-power", body("z = torch.linalg.matrix_power(grad, 1000)", "return lr * grad"), "gate",
      ("forbidden_attr",)),
    C("linalg-dict", body("inv = torch.linalg.__dict__['inv']", "return lr * grad"), "gate", ("dunder",)),
    C("linalg-beyond-allowed", body("return lr * torch.linalg.solve(grad, grad)"), "gate", ("forbidden_attr",)),
    C("linalg-os", body("torch.linalg.os.system('touch CANARY')", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("eye-bomb", body("z = torch.eye(10**6)", "return lr * grad"), "gate", ("too_large",)),
    C("gram-in-scalar-state", body("g = grad.reshape(grad.shape[0], -1)", "state['gram'] = g @ g.T", "return lr * grad"),
      "gate", ("stateful",)),
    C("list-repeat-bomb", body("z = [0.0] * 10000000", "return lr * grad"), "gate", ("too_large",)),
    C("pow-tower", body("n = 10**10**10", "return lr * grad"), "gate", ("too_large",)),
    C("pow-tower-module", "N = 10**10**10\n\n" + body("return lr * grad"), "gate", ("too_large",)),
    C("shift-bomb", body("n = 1 << (1 << 40)", "return lr * grad"), "gate", ("too_large",)),
    C("recursion", "def h(x):\n    return h(x) + 1\n\n\n" + body("return lr * h(grad)"), "gate", ("recursion",)),
    C("mutual-recursion", "def a(x):\n    return b(x)\n\n\ndef b(x):\n    return a(x)\n\n\n" + body("return lr * a(grad)"),
      "gate", ("recursion",)),
    C("fork", "import os\n" + body("os.fork()", "return lr * grad"), "gate", ("import",)),
    C("torch-multiprocessing", body("p = torch.multiprocessing.Process()", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("write-file-open", body("fh = open('CANARY', 'w')", "fh.write('pwned')", "return lr * grad"), "gate", ("forbidden_name",)),
    C("write-file-with", body("with open('CANARY', 'w') as fh:", "    fh.write('x')", "return lr * grad"), "gate",
      ("forbidden_syntax",)),
    C("write-file-torch-save", body("torch.save(grad, 'CANARY')", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("socket", "import socket\n" + body("socket.create_connection(('127.0.0.1', PORT))", "return lr * grad"),
      "gate", ("import",)),
    C("socket-via-torch-hub", body("torch.hub.load_state_dict_from_url('http://127.0.0.1:PORT/x')", "return lr * grad"),
      "gate", ("forbidden_attr",)),
    # Accepted by the gate (nothing names a big shape), stopped by the worker's address-space limit.
    C("broadcast-bomb", body("x = grad.reshape(-1, 1) * grad.reshape(1, -1)", "y = x.reshape(-1, 1) * x.reshape(1, -1)",
                             "z = y.reshape(-1, 1) * y.reshape(1, -1)", "return lr * grad + 0.0 * z.sum()"),
      "os", ("memory",)),
    # Matrix products pass the gate; the cost probe measures what they hold and take.
    C("matmul-bomb", body("z = grad.reshape(-1, 1) @ grad.reshape(1, -1)", "return lr * grad + 0.0 * z.sum()"),
      "runtime", ("over_budget",)),
    C("outer-of-flattened-grad", body("f = grad.flatten()", "z = f[:, None] @ f[None, :]",
                                      "return lr * grad + 0.0 * z.sum()"), "runtime", ("over_budget",)),
    C("matrix-power-loop", body("g = grad.reshape(grad.shape[0], -1)", "x = g / (g.norm() + 1e-8)",
                                "if grad.numel() > 1000:", "    for i in range(1000):",
                                "        x = x @ (x.T @ x)", "        x = x / (x.norm() + 1e-8)",
                                "return lr * x.reshape(grad.shape)"), "runtime", ("over_budget",)),
    C("eye-from-a-runtime-size", body("z = torch.eye(grad.numel() * 1000)", "return lr * grad + 0.0 * z.sum()"),
      "runtime", ("too_large",)),
    C("diag-of-flattened-grad", body("z = torch.diag(grad.flatten())", "return lr * grad + 0.0 * z.sum()"),
      "runtime", ("too_large", "over_budget")),
    C("gram-in-buffers-state", body("f = grad.flatten()", "state['gram'] = f[:, None] @ f[None, :]", "return lr * grad"),
      "runtime", ("state_rule", "over_budget"), BUFFERS),
    C("string-doubling-bomb", body("k = 'ab'", "for i in range(40):", "    k = k + k", "return lr * grad"),
      "os", ("memory", "timeout")),  # 2**41 bytes: the address-space limit (or the clock) ends it
    # A run-time integer tower: no constant exponent for the gate to see; the wall clock stops it.
    C("runtime-int-tower", body("a = 10", "b = a ** a", "c = a ** b", "return lr * grad"),
      "os", ("timeout", "cpu_time", "memory")),

    # -- state smuggling against the scalar O(1) rule -------------------------------------------------
    C("state-tensor", body("state['m'] = grad", "return lr * grad"), "gate", ("stateful",)),
    C("state-0d-tensor", body("state['m'] = grad.sum()", "return lr * grad"), "gate", ("stateful",)),
    C("state-setdefault", body("m = state.setdefault('m', grad)", "return lr * grad"), "gate", ("stateful",)),
    C("state-update-dict", body("state.update({'m': grad})", "return lr * grad"), "gate", ("stateful",)),
    C("state-update-kwargs", body("state.update(m=grad * 0.9)", "return lr * grad"), "gate", ("stateful",)),
    C("state-list", body("state['m'] = [grad.sum().item()] ", "return lr * grad"), "gate", ("stateful",)),
    C("state-tuple", body("state['m'] = (1.0, 2.0)", "return lr * grad"), "gate", ("stateful",)),
    C("state-alias", body("s = state", "s['m'] = grad", "return lr * grad"), "gate", ("stateful",)),
    C("state-to-helper", "def keep(s, x):\n    return x\n\n\n" + body("keep(state, grad)", "return lr * grad"),
      "gate", ("stateful",)),
    C("closure", body("def inner():", "    return grad", "return lr * inner()"), "gate", ("forbidden_syntax",)),
    C("lambda-closure", body("f = lambda: grad", "return lr * f()"), "gate", ("forbidden_syntax",)),
    C("mutable-default-helper", "def h(x, memo=[]):\n    return x\n\n\n" + body("return lr * h(grad)"), "gate",
      ("stateful",)),
    C("mutable-default-update", "def update(grad, param, state, lr, t=[]):\n    return lr * grad\n", "gate",
      ("stateful",)),
    C("global-statement", body("global M", "M = grad", "return lr * grad"), "gate", ("global",)),
    C("module-container", "M = {}\n\n\n" + body("return lr * grad"), "gate", ("global",)),
    C("module-tensor", "M = torch.zeros(10)\n\n\n" + body("return lr * grad"), "gate", ("global",)),
    C("function-attribute", body("update.memo = grad", "return lr * grad"), "gate", ("attr_assign",)),
    C("tensor-attribute", body("param.memo = grad", "return lr * grad"), "gate", ("attr_assign",)),
    C("grad-attribute-write", body("param.grad = grad", "return lr * grad"), "gate", ("attr_assign",)),
    C("grad-attribute-read", body("g = param.grad", "return lr * grad"), "gate", ("forbidden_attr",)),
    C("wide-int-value", body("state['n'] = state.get('n', 1) * 2**60", "return lr * grad"), "runtime", ("state_rule",)),
    # O(n) data packed into a state *key*, read back next call with max(state.keys()): one key,
    # so the 16-key limit never fires. (A hole: keys were unbounded; harness now bounds them.)
    C("int-key-smuggle", body("k = 1", "for i in range(16):",
                              "    k = k * 2**32 + int(abs(grad.flatten()[i].item()) * 1e6)",
                              "if len(state) > 0:", "    old = state.pop(max(state.keys()))",
                              "state[k] = 1.0", "return lr * grad"), "runtime", ("state_rule",)),
    C("string-key-smuggle", body("k = 'x'", "for i in range(200):",
                                 "    k = k + ('1' if grad.flatten()[i % 16].item() > 0 else '0')",
                                 "if len(state) > 0:", "    old = state.pop(max(state.keys()))",
                                 "state[k] = 1.0", "return lr * grad"), "runtime", ("state_rule",)),
    C("too-many-keys", body("state[t] = 1.0", "return lr * grad"), "runtime", ("state_rule",)),
    C("buffers-list", body("state['m'] = [grad, grad]", "return lr * grad"), "runtime", ("state_rule",), BUFFERS),
    C("buffers-quadratic", body("state['m'] = grad.reshape(-1, 1) * grad.reshape(1, -1)", "return lr * grad"),
      "runtime", ("state_rule",), BUFFERS),
    C("buffers-autograd-graph", body("m = state.get('m', torch.zeros_like(param, requires_grad=True))",
                                     "state['m'] = 0.9 * m + grad", "return lr * grad"), "runtime", ("state_rule",), BUFFERS),

    # -- output tricks ----------------------------------------------------------------------------
    C("nan", body("return lr * grad * float('nan')"), "runtime", ("bad_output",)),
    C("inf", body("return lr * grad / 0.0 + torch.inf"), "runtime", ("bad_output",)),
    C("ignores-lr", body("return 0.01 * grad"), "runtime", ("ignores_lr",)),
    C("wrong-shape", body("return lr * grad.sum()"), "runtime", ("bad_output",)),
    C("wrong-dtype", body("return (lr * grad).double()"), "runtime", ("bad_output",)),
    C("returns-number", body("return lr"), "runtime", ("bad_output",)),
    C("meta-device", body("return torch.zeros_like(grad, device='meta')"), "runtime", ("bad_output",)),
    C("step-requires-grad", body("return lr * grad + torch.zeros_like(grad, requires_grad=True)"), "runtime",
      ("bad_output",)),
    C("inplace-method", body("grad.mul_(lr)", "return grad"), "gate", ("inplace",)),
    C("inplace-item", body("param[0] = 0.0", "return lr * grad"), "gate", ("inplace",)),
    C("inplace-out", body("return torch.mul(grad, lr, out=grad)"), "gate", ("inplace",)),
    C("inplace-out-kwargs", body("return torch.sign(grad, **{'out': grad})"), "gate", ("forbidden_syntax",)),

    # -- model junk -------------------------------------------------------------------------------
    C("junk-empty", "", "gate", ("empty",)),
    C("junk-nul", "```python\n" + body("return lr * grad").replace("lr *", "lr\x00*") + "```", "gate", ("junk",)),
    C("junk-prose", "As an AI, I think Adam is the best optimizer. Use lr = 3e-4.", "gate", ("no_code",)),
    C("junk-truncated", "Sure!\n```python\n" + H + "    m = torch.sign(grad\n", "gate", ("syntax",)),
    C("junk-class", "```python\nclass Optimizer:\n    def update(self, grad):\n        return grad\n```", "gate",
      ("forbidden_syntax", "global", "no_update")),
    C("junk-main-block", "```python\n" + body("return lr * grad") + "\nif __name__ == '__main__':\n    print(1)\n```",
      "gate", ("global",)),
    C("junk-signature", "```python\ndef update(params, grads, lr):\n    return lr * grads\n```", "gate", ("signature",)),
    C("junk-huge", "```python\n" + body("return lr * grad") + "# more\n" * 10_000 + "```", "gate", ("too_large",)),
]

assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
assert all(c.layer in ("gate", "runtime", "os") and set(c.reasons) <= set(REASONS) for c in CASES)


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout_s=TIMEOUT_S) as sb:
        yield sb


@pytest.fixture(scope="module")
def listener():
    """A listening localhost socket that no candidate may reach."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def fresh_canary():
    CANARY.unlink(missing_ok=True)
    yield
    CANARY.unlink(missing_ok=True)


def assert_no_connection(srv: socket.socket) -> None:
    try:
        conn, peer = srv.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail(f"a candidate connected to the listening socket from {peer}")


def fill(code: str, port: int) -> str:
    return code.replace("CANARY", str(CANARY)).replace("PORT", str(port))


# -- the table ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_candidate_is_caught(case, sandbox, listener):
    reply = fill(case.code, listener.getsockname()[1])
    gated = check_reply(reply, case.memory)
    code = gated.code or extract_code(reply).code
    if case.layer == "gate":
        assert not gated.verdict.ok, f"the gate accepted {case.id}"
        assert gated.verdict.reason in case.reasons, gated.verdict.one_line()
        if code is not None:
            # The worker never trusts the parent: sent straight to it, the code is gated again.
            answer = sandbox.evaluate(code, case.memory)
            assert not answer["ok"] and answer["stage"] == "gate", answer
            assert answer["reason"] == gated.verdict.reason
    else:
        assert gated.verdict.ok, f"{case.id} is meant to pass the gate: {gated.verdict.one_line()}"
        answer = sandbox.evaluate(gated.normalized, case.memory)
        assert not answer["ok"], f"{case.id} was accepted: {answer}"
        assert answer["reason"] in case.reasons, answer
        if case.layer == "runtime":
            assert answer["stage"] in ("sandbox", "probe"), answer
    # The parent is unharmed and the same Sandbox keeps working.
    after = sandbox.evaluate(SGD, SCALAR)
    assert after["ok"], after
    if case.layer != "gate":  # code that ran: it wrote nothing and reached no socket
        assert not CANARY.exists(), f"{case.id} wrote {CANARY}"
        assert_no_connection(listener)


def test_every_layer_is_exercised():
    layers = {c.layer for c in CASES}
    assert layers == {"gate", "runtime", "os"}


def test_timeout_of_a_slow_candidate_the_gate_accepts(sandbox):
    # Loop bounds are checked per function, so a helper's loop inside update's loop multiplies:
    # 1000 x 1000 sorts per call is legal code that needs minutes. Only the wall clock stops it.
    slow = ("def churn(x):\n"
            "    for i in range(1000):\n"
            "        x = torch.sort(x + torch.randn_like(x)).values\n"
            "    return x\n\n\n"
            + body("y = grad", "for j in range(1000):", "    y = churn(y)", "return lr * grad + 0.0 * y"))
    gated = check_reply(slow, SCALAR)
    assert gated.verdict.ok, gated.verdict.one_line()
    restarts = sandbox.restarts
    answer = sandbox.evaluate(gated.normalized, SCALAR, timeout_s=1.5)
    assert not answer["ok"] and answer["reason"] == "timeout", answer
    assert answer["ms"]["sandbox"] < 1500 + 2000  # killed near the deadline, not at the end
    assert sandbox.restarts == restarts + 1
    assert sandbox.evaluate(rules.source("robust_zero_state"), SCALAR)["ok"]


def test_sandbox_worker_is_locked_down(sandbox):
    assert sandbox.ping()
    info = sandbox.info
    assert info.get("address_space_mb")
    if os.geteuid() == 0:
        assert info.get("uid") == 65534  # root drops to nobody before running candidates
    assert info.get("pid") != os.getpid()


def test_valid_rules_pass_the_sandbox(sandbox):
    assert sandbox.evaluate(rules.source("robust_zero_state"), SCALAR)["ok"]
    assert sandbox.evaluate(rules.source("sign_sgd"), SCALAR)["ok"]
    for code in (NEWTON_SCHULZ, NEWTON_SCHULZ_NAMED):  # matrix products, no tensor in state
        answer = sandbox.evaluate(code, SCALAR)
        assert answer["ok"], answer
    adam = rules.source("adam")
    assert sandbox.evaluate(adam, BUFFERS)["ok"]
    scalar = sandbox.evaluate(adam, SCALAR)
    assert not scalar["ok"] and scalar["reason"] == "stateful"


# -- defense in depth: the runtime guards with the gate bypassed -----------------------------------

def call(code: str, memory: str = SCALAR):
    """Compile without the gate and make one checked call, in this process."""
    update = compile_candidate(code)
    rule = CheckedRule(update, memory)
    grad, param = torch.randn(4, 3), torch.randn(4, 3)
    return rule(grad, param, {}, 0.1, 1)


BYPASS = [
    ("torch-os", body("return torch.os.system('touch CANARY')"), ("forbidden_attr",)),
    ("torch-_C", body("return torch._C"), ("compile",)),
    ("torch-load", body("return torch.load('CANARY')"), ("forbidden_attr",)),
    ("grad-class", body("return grad.__class__"), ("compile",)),
    ("state-class", body("return state.__class__.__subclasses__()"), ("compile",)),
    ("getattr-dunder-string", body("return getattr(grad, '__cl' + 'ass__')"), ("runtime",)),
    ("numpy", body("return grad.numpy()"), ("forbidden_attr",)),
    ("tensor-data", body("return grad.data"), ("forbidden_attr",)),
    ("inplace-method", body("grad.add_(1)", "return lr * grad"), ("inplace",)),
    ("inplace-item", body("grad[0] = 1", "return lr * grad"), ("inplace",)),
    # A literal out= keyword reaches the real torch function (the proxy holds no wrappers, for
    # speed): the harness's mutation check is what catches it when the gate is bypassed.
    ("inplace-out-kwarg", body("return torch.sign(grad, out=grad)"), ("inplace", "mutation")),
    ("inplace-out-kwargs", body("return torch.sign(grad, **{'out': grad})"), ("inplace",)),
    ("tensor-attribute", body("param.memo = grad", "return lr * grad"), ("inplace", "attr_assign")),
    ("module-attribute", body("torch.sign = abs", "return lr * grad"), ("compile", "attr_assign")),
    ("import-os-attr", "import os\n" + body("os.system('touch CANARY')", "return lr * grad"), ("forbidden_attr",)),
    ("from-os-import", "from os import system\n" + body("system('touch CANARY')", "return lr * grad"), ("runtime",)),
    ("open", body("open('CANARY', 'w').write('x')", "return lr * grad"), ("runtime",)),
    ("eval", body("return eval('grad')"), ("compile", "runtime")),
    ("iterate-state", body("for k in state.keys():", "    pass", "return lr * grad"), ("loop",)),
    ("big-range", body("for i in range(10**6):", "    pass", "return lr * grad"), ("loop",)),
    ("state-tensor", body("state['m'] = grad.sum()", "return lr * grad"), ("state_rule",)),
    ("tensor-in-list", body("state['m'] = [grad]", "return lr * grad"), ("state_rule",)),
    ("linalg-beyond-allowed", body("return lr * torch.linalg.inv(grad[:3])"), ("forbidden_attr",)),
    ("linalg-members", body("return torch.linalg._members"), ("compile",)),
    ("eye-bomb", body("return lr * grad + torch.eye(10**5).sum()"), ("too_large",)),
    ("eye-out", body("return lr * grad + torch.eye(3, out=grad).sum()"), ("inplace", "runtime")),
    ("diag-bomb", body("return lr * grad + torch.diag(torch.ones_like(grad).repeat(9000)).sum()"),
     ("too_large", "forbidden_attr")),
]


@pytest.mark.parametrize("name, code, reasons", BYPASS, ids=[b[0] for b in BYPASS])
def test_runtime_guards_without_the_gate(name, code, reasons):
    code = fill(code, 9)
    assert not check_reply(code, SCALAR).verdict.ok, "the gate rejects all of these"
    with pytest.raises(CandidateError) as info:
        call(code)
    assert info.value.reason in reasons, (info.value.reason, info.value.message)
    assert not CANARY.exists()


def test_runtime_mutation_check_without_the_gate():
    # Reaching grad's memory without the blocked spellings: detach() shares storage, but every
    # write path (item assignment, in-place methods, out=) is refused, so nothing changes.
    code = body("g = grad.detach()", "g[0] = 0.0", "return lr * grad")
    grad, param = torch.ones(3), torch.ones(3)
    rule = CheckedRule(compile_candidate(code), SCALAR)
    with pytest.raises(CandidateError) as info:
        rule(grad, param, {}, 0.1, 1)
    assert info.value.reason == "inplace"
    assert torch.equal(grad, torch.ones(3))


def test_torch_return_types_are_readable_at_runtime():
    # The gate allows .values/.indices on torch.sort/max results; the runtime guard must agree.
    step = call(body("v = torch.sort(grad.flatten()).values", "i = torch.max(grad, 0).indices",
                     "return lr * grad / (v.abs().max() + 1.0) + 0.0 * i.sum()"))
    assert step.shape == (4, 3)
