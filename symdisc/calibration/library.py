"""A library of 28 diverse update rules in contract form, for calibrating fitness measures.

Scalar rules (O(1) state) and buffer rules (Adam-like). Each is (name, memory class, source). They
are trusted code written for calibration, but they keep to the contract form so the gate, the sandbox
worker and the bench's exporter run them exactly as they would run a model's candidate. The last five
are the built-in rules of ``symdisc/rules/`` read from their files (normalized SGD, LARS and Signum
are here already as normalized_sgd, lars_trust and signum).
"""

from __future__ import annotations

from symdisc.rules import source as _builtin_source

RULES: list[tuple[str, str, str]] = [
    ("sgd", "scalar", """
def update(grad, param, state, lr, t):
    return lr * grad
"""),
    ("sign_sgd", "scalar", """
def update(grad, param, state, lr, t):
    return lr * torch.sign(grad)
"""),
    ("robust_zero_state", "scalar", """
def update(grad, param, state, lr, t):
    s = torch.sign(grad)
    med = torch.median(s).item()
    state['m'] = 0.9 * state.get('m', 0.0) + 0.1 * med
    return lr / (abs(state['m']) + 1.0) * s
"""),
    ("normalized_sgd", "scalar", """
def update(grad, param, state, lr, t):
    return lr * grad / (torch.norm(grad) + 1e-8)
"""),
    ("rms_normalized", "scalar", """
def update(grad, param, state, lr, t):
    rms = torch.sqrt(torch.mean(grad * grad)) + 1e-8
    return lr * grad / rms
"""),
    ("lars_trust", "scalar", """
def update(grad, param, state, lr, t):
    ratio = (torch.norm(param) + 1e-3) / (torch.norm(grad) + 1e-8)
    return lr * ratio * grad
"""),
    ("clipped_sgd", "scalar", """
def update(grad, param, state, lr, t):
    n = torch.norm(grad).item()
    scale = 1.0 if n < 1.0 else 1.0 / n
    return lr * scale * grad
"""),
    ("sgd_cosine", "scalar", """
def update(grad, param, state, lr, t):
    return lr * (0.55 + 0.45 * math.cos(math.pi * min(t, 1000) / 1000)) * grad
"""),
    ("sgd_inv_sqrt", "scalar", """
def update(grad, param, state, lr, t):
    return lr * grad / math.sqrt(1.0 + t / 100.0)
"""),
    ("sign_warmup", "scalar", """
def update(grad, param, state, lr, t):
    return lr * min(1.0, t / 100.0) * torch.sign(grad)
"""),
    ("scalar_rms_ema", "scalar", """
def update(grad, param, state, lr, t):
    ms = torch.mean(grad * grad).item()
    v = 0.99 * state.get('v', ms) + 0.01 * ms
    state['v'] = v
    return lr * grad / (math.sqrt(v) + 1e-8)
"""),
    ("sgd_weight_decay", "scalar", """
def update(grad, param, state, lr, t):
    return lr * (grad + 0.01 * param)
"""),
    ("tanh_grad", "scalar", """
def update(grad, param, state, lr, t):
    scale = torch.mean(torch.abs(grad)) + 1e-8
    return lr * torch.tanh(grad / scale)
"""),
    ("sign_times_mean_abs", "scalar", """
def update(grad, param, state, lr, t):
    return lr * torch.sign(grad) * torch.mean(torch.abs(grad)) * 100.0
"""),
    ("sgd_tenth", "scalar", """
def update(grad, param, state, lr, t):
    return lr * 0.1 * grad
"""),
    ("momentum", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    m = 0.9 * m + grad
    state['m'] = m
    return lr * m
"""),
    ("nesterov", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    m = 0.9 * m + grad
    state['m'] = m
    return lr * (grad + 0.9 * m)
"""),
    ("adam", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    v = state.get('v', torch.zeros_like(param))
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad * grad
    state['m'] = m
    state['v'] = v
    mh = m / (1 - 0.9 ** t)
    vh = v / (1 - 0.999 ** t)
    return lr * mh / (torch.sqrt(vh) + 1e-8)
"""),
    ("lion", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    step = lr * torch.sign(0.9 * m + 0.1 * grad)
    state['m'] = 0.99 * m + 0.01 * grad
    return step
"""),
    ("rmsprop", "buffers", """
def update(grad, param, state, lr, t):
    v = state.get('v', torch.zeros_like(param))
    v = 0.99 * v + 0.01 * grad * grad
    state['v'] = v
    return lr * grad / (torch.sqrt(v) + 1e-8)
"""),
    ("signum", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    m = 0.9 * m + 0.1 * grad
    state['m'] = m
    return lr * torch.sign(m)
"""),
    ("adagrad", "buffers", """
def update(grad, param, state, lr, t):
    s = state.get('s', torch.zeros_like(param))
    s = s + grad * grad
    state['s'] = s
    return lr * grad / (torch.sqrt(s) + 1e-10)
"""),
    ("adam_no_bias_corr", "buffers", """
def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    v = state.get('v', torch.zeros_like(param))
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad * grad
    state['m'] = m
    state['v'] = v
    return lr * m / (torch.sqrt(v) + 1e-8)
"""),
] + [(name, memory, _builtin_source(name)) for name, memory in [
    ("adam_mini_v", "scalar"), ("orthogonal_sgd", "scalar"), ("sinkhorn_sgd", "scalar"), ("muon", "buffers"),
    ("sophia", "buffers"),
]]


def rules() -> list[dict]:
    return [{"name": n, "memory": m, "code": c.lstrip("\n")} for n, m, c in RULES]
