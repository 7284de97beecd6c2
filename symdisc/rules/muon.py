"""Muon (Jordan et al., 2024, github.com/KellerJordan/Muon) for every parameter, as its README asks.

Tensors of two or more dimensions (linear and conv weights, viewed as rows x the rest) take Muon's
step: Nesterov momentum (m <- lerp(m, g, 1 - BETA); u = lerp(g, m, BETA)), five Newton-Schulz
iterations with Muon's quintic coefficients on u, scaled by max(1, rows / cols) ** 0.5, plus
decoupled weight decay. The others (biases) take AdamW with the README's settings: betas (0.9, 0.95),
eps 1e-10, and a learning rate of lr * ADAM_LR_RATIO (the README's 3e-4 beside Muon's 0.02). The
rule cannot tell a layer's place in the network, so the first conv and the classifier head, which
the README would give to AdamW, take Muon's step too. One buffer for matrices, two for the rest
(buffers class).
"""

BETA = 0.95
NS_A = 3.4445
NS_B = -4.7750
NS_C = 2.0315
NS_EPS = 1e-7
WEIGHT_DECAY = 0.01
ADAM_LR_RATIO = 0.015
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.95
ADAM_EPS = 1e-10


def orthogonalize(g):
    x = g.reshape(g.shape[0], -1)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (torch.norm(x) + NS_EPS)
    for i in range(5):
        a = x @ x.T
        b = NS_B * a + NS_C * (a @ a)
        x = NS_A * x + b @ x
    if tall:
        x = x.T
    return x


def update(grad, param, state, lr, t):
    if grad.dim() >= 2:
        m = torch.lerp(state.get('m', torch.zeros_like(param)), grad, 1 - BETA)
        state['m'] = m
        u = torch.lerp(grad, m, BETA)
        rows = grad.shape[0]
        cols = grad.numel() // rows
        scale = max(1.0, rows / cols) ** 0.5
        return lr * (scale * orthogonalize(u).reshape_as(grad) + WEIGHT_DECAY * param)
    m = torch.lerp(state.get('m', torch.zeros_like(param)), grad, 1 - ADAM_BETA1)
    v = torch.lerp(state.get('v', torch.zeros_like(param)), grad * grad, 1 - ADAM_BETA2)
    state['m'] = m
    state['v'] = v
    m_hat = m / (1 - ADAM_BETA1 ** t)
    v_hat = v / (1 - ADAM_BETA2 ** t)
    adam_lr = lr * ADAM_LR_RATIO
    return adam_lr * (m_hat / (torch.sqrt(v_hat) + ADAM_EPS) + WEIGHT_DECAY * param)
