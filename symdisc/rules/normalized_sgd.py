"""Normalized SGD (e.g. Hazan, Levy and Shalev-Shwartz, 2015): each tensor steps lr along g / ||g||.

The step's Frobenius norm is lr whatever the gradient's scale. No state (scalar class).
"""

EPS = 1e-12


def update(grad, param, state, lr, t):
    return lr * grad / (torch.norm(grad) + EPS)
