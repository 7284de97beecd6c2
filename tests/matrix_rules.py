"""Contract-form matrix rules that the judge's tests run (sources, as a model would write them)."""

H = "def update(grad, param, state, lr, t):\n"

# Muon's orthogonalisation without its momentum: five Newton-Schulz iterations on the gradient viewed
# as rows x rest, transposed when it has more rows than columns. Stores nothing: scalar class.
NEWTON_SCHULZ = H + """\
    rows = grad.shape[0] if grad.dim() > 0 else 1
    g = grad.reshape(rows, -1)
    tall = g.shape[0] > g.shape[1]
    if tall:
        g = g.T
    x = g / (torch.linalg.matrix_norm(g) + 1e-7)
    for i in range(5):
        a = x @ x.T
        b = -4.7750 * a + 2.0315 * (a @ a)
        x = 3.4445 * x + b @ x
    if tall:
        x = x.T
    return lr * x.reshape(grad.shape)
"""

# The same iteration through the named functions and views the contract allows.
NEWTON_SCHULZ_NAMED = H + """\
    g = grad.flatten(1) if grad.dim() > 1 else grad.reshape(1, -1)
    if g.shape[0] > g.shape[1]:
        g = g.mT
    x = g / (torch.linalg.vector_norm(g) + 1e-7)
    eye = torch.eye(x.shape[0])
    for i in range(5):
        a = torch.mm(x, x.t())
        x = torch.matmul(3.4445 * eye - 4.7750 * a + 2.0315 * torch.matmul(a, a), x)
    if grad.dim() > 1 and grad.flatten(1).shape[0] > grad.flatten(1).shape[1]:
        x = x.mT
    scale = torch.diagonal(a).mean().item() + torch.diag(torch.diag(a)).trace().item() * 0.0
    state['scale'] = scale
    return lr * x.reshape(grad.shape)
"""

# Row normalisation with norms along a dimension (a SinkGD-like half step).
ROW_NORMALISED = H + """\
    g = grad.reshape(grad.shape[0], -1) if grad.dim() > 1 else grad.reshape(1, -1)
    rows = torch.linalg.vector_norm(g, dim=1, keepdim=True) + 1e-8
    cols = torch.norm(g / rows, dim=0, keepdim=True) + 1e-8
    return lr * (g / rows / cols).reshape(grad.shape)
"""
