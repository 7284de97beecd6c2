"""Lion (Chen et al., 2023): sign of an interpolation of momentum and gradient; one buffer."""

BETA1 = 0.9
BETA2 = 0.99


def update(grad, param, state, lr, t):
    m = state.get('m', torch.zeros_like(param))
    step = lr * torch.sign(BETA1 * m + (1 - BETA1) * grad)
    state['m'] = BETA2 * m + (1 - BETA2) * grad
    return step
