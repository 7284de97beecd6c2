"""Sophia's clipped update (Liu et al., 2023, "Sophia: A Scalable Stochastic Second-order Optimizer")
with a diagonal Hessian estimated from the training gradient alone.

step = lr * clip(m / max(GAMMA * h, EPS), 1), m an EMA of g, h an EMA of the estimate B * g * g.
The paper's estimators need more than the contract gives: Hutchinson (Sophia-H) a Hessian-vector
product, Gauss-Newton-Bartlett (Sophia-G) a second backward pass with labels sampled from the model's
own prediction, B * g_hat * g_hat. The rule sees one gradient, of the true labels, so its estimate is
GNB's formula on that gradient: the empirical Fisher diagonal, which adds the squared mean gradient
to GNB's expectation, so it overstates curvature where the gradient is consistent. B is the bench's
batch size (128), refreshed every step rather than every ten. Betas and eps are the paper's; no weight
decay, like the other built-in rules. Two buffers (buffers class).
"""

BETA1 = 0.96
BETA2 = 0.99
GAMMA = 0.01
EPS = 1e-12
BATCH = 128


def update(grad, param, state, lr, t):
    m = BETA1 * state.get('m', torch.zeros_like(param)) + (1 - BETA1) * grad
    h = BETA2 * state.get('h', torch.zeros_like(param)) + (1 - BETA2) * BATCH * grad * grad
    state['m'] = m
    state['h'] = h
    return lr * torch.clamp(m / torch.clamp_min(GAMMA * h, EPS), -1.0, 1.0)
