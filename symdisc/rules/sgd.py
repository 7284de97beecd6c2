"""Plain SGD: the step is lr times the gradient. No state."""


def update(grad, param, state, lr, t):
    return lr * grad
