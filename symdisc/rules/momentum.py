"""SGD with heavy-ball momentum: one buffer shaped like the parameter (buffers class)."""


def update(grad, param, state, lr, t):
    buf = 0.9 * state.get('buf', torch.zeros_like(param)) + grad
    state['buf'] = buf
    return lr * buf
