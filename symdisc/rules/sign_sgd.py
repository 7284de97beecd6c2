"""signSGD: the sign of the gradient, scaled by lr. No state; robust to gradient scale."""


def update(grad, param, state, lr, t):
    return lr * torch.sign(grad)
