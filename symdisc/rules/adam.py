"""Adam written to the candidate contract: two buffers shaped like the parameter.

It passes the `buffers` memory class and must fail `scalar`.
"""

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8


def update(grad, param, state, lr, t):
    m = BETA1 * state.get('m', torch.zeros_like(param)) + (1 - BETA1) * grad
    v = BETA2 * state.get('v', torch.zeros_like(param)) + (1 - BETA2) * grad * grad
    state['m'] = m
    state['v'] = v
    m_hat = m / (1 - BETA1 ** t)
    v_hat = v / (1 - BETA2 ** t)
    return lr * m_hat / (torch.sqrt(v_hat) + EPS)
