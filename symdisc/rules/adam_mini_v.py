"""Adam-mini's second moment without a first moment (after Zhang et al., 2024, "Adam-mini").

Adam-mini keeps one running mean of mean(g*g) per parameter block instead of Adam's per-coordinate v;
here each tensor is one block and the first moment is dropped too, so the state is one Python float
per tensor (scalar class): step = lr * g / (sqrt(v / (1 - BETA2**t)) + EPS), Adam-mini's bias
correction, beta2 and eps.
"""

BETA2 = 0.999
EPS = 1e-8


def update(grad, param, state, lr, t):
    v = BETA2 * state.get('v', 0.0) + (1 - BETA2) * torch.mean(grad * grad).item()
    state['v'] = v
    v_hat = v / (1 - BETA2 ** t)
    return lr * grad / (math.sqrt(v_hat) + EPS)
