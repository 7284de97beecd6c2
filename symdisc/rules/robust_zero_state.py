"""The original experiment's discovered rule ("Robust Zero-State Optimizer", generation 166).

Sign of the gradient, the median of the signs across the layer (a "democratic vote"), and a scalar
EMA of that median that damps the step. State: one Python float per parameter tensor.
"""


def update(grad, param, state, lr, t):
    c1 = 0.9
    s = torch.sign(grad)
    med = torch.median(s).item()
    state['m'] = c1 * state.get('m', 0.0) + (1 - c1) * med
    return lr / (abs(state['m']) + 1.0) * s
