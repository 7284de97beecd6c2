"""SGD with heavy-ball momentum: one buffer shaped like the parameter (buffers class)."""

BETA = 0.9


def update(grad, param, state, lr, t):
    buf = BETA * state.get('buf', torch.zeros_like(param)) + grad
    state['buf'] = buf
    return lr * buf
