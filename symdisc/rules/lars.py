"""LARS's layer-wise trust ratio (You, Gitman and Ginsburg, 2017), without momentum or weight decay.

Each tensor steps lr * (||w|| / ||g||) * g: a step whose norm is lr times the weight's norm, so lr is
the relative change per step (LARS's trust coefficient folded into lr). A tensor whose weight or
gradient norm is zero takes the plain step lr * g, as LARS implementations do. No state (scalar class).
"""

EPS = 1e-8


def update(grad, param, state, lr, t):
    w_norm = torch.norm(param)
    g_norm = torch.norm(grad)
    usable = torch.logical_and(w_norm > 0, g_norm > 0)
    ratio = torch.where(usable, w_norm / (g_norm + EPS), torch.ones_like(w_norm))
    return lr * ratio * grad
