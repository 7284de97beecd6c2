"""Signum (Bernstein et al., 2018, "signSGD: compressed optimisation for non-convex problems").

The sign of an exponential moving average of the gradient: one buffer shaped like the parameter
(buffers class).
"""

BETA = 0.9


def update(grad, param, state, lr, t):
    m = BETA * state.get('m', torch.zeros_like(param)) + (1 - BETA) * grad
    state['m'] = m
    return lr * torch.sign(m)
