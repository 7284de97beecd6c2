# The first campaign's winner (docs/discoveries.md): signSGD scaled down by the gradient's norm.
# Contract form; `symdisc bench benchmarks/rules/first_campaign_winner.py` trains it in the sandbox.
def update(grad, param, state, lr, t):
    s = torch.sign(grad)
    norm = grad.norm()
    return lr / (norm + 1.0) * s
