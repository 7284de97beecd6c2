"""Stateless orthogonalised SGD: Muon's Newton-Schulz step without its momentum (Jordan et al., 2024).

Each matrix-shaped gradient (a conv weight viewed as rows x the rest) is replaced by an approximation
of its nearest semi-orthogonal matrix U V^T (from G = U S V^T): divided by its Frobenius norm, then
five iterations of Muon's quintic X <- a X + (b A + c A A) X with A = X X^T and Muon's coefficients,
on the wide orientation (transposed when rows > cols), in float32. The result is scaled by
max(1, rows / cols) ** 0.5 as Muon scales it (here from the matrix view's own shape). A 1-D tensor
(a bias) takes the normalised step g / ||g||, which is what orthogonalising it as a 1 x n matrix
gives exactly. No state (scalar class).
"""

NS_A = 3.4445
NS_B = -4.7750
NS_C = 2.0315
NS_EPS = 1e-7
EPS = 1e-12


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
    if grad.dim() < 2:
        return lr * grad / (torch.norm(grad) + EPS)
    rows = grad.shape[0]
    cols = grad.numel() // rows
    scale = max(1.0, rows / cols) ** 0.5
    return lr * scale * orthogonalize(grad).reshape_as(grad)
