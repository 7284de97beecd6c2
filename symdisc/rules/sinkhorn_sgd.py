"""SinkGD (Scetbon, Ma, Gong and Meeds, 2025, "Gradient Multi-Normalization for Stateless and
Scalable LLM Training"): the gradient, viewed as an m x n matrix (a conv weight as rows x the rest),
goes through five rounds of the paper's square-root Sinkhorn (its Algorithm 3): every row rescaled to
L2 norm sqrt(n), then every column to L2 norm sqrt(m), which leaves entries of unit mean square. The
paper trains 1-D tensors with Adam; without state they take the unit-RMS step g / rms(g) here, the
same per-coordinate scale. No state (scalar class).
"""

EPS = 1e-8


def update(grad, param, state, lr, t):
    if grad.dim() < 2:
        return lr * grad / (torch.sqrt(torch.mean(grad * grad)) + EPS)
    x = grad.reshape(grad.shape[0], -1)
    m = x.shape[0]
    n = x.shape[1]
    for i in range(5):
        x = x * (math.sqrt(n) / torch.clamp_min(torch.norm(x, dim=1, keepdim=True), EPS))
        x = x * (math.sqrt(m) / torch.clamp_min(torch.norm(x, dim=0, keepdim=True), EPS))
    return lr * x.reshape_as(grad)
