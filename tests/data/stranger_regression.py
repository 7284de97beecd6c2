# A task file written from the contract alone: fit y = sin(3x) + x^2 with a tiny MLP.
import torch

STEPS = 120


def prepare(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(512, 1, generator=gen) * 4 - 2
    y = torch.sin(3 * x) + x ** 2 + 0.05 * torch.randn(512, 1, generator=gen)
    return x[:400], y[:400], x[400:], y[400:]


def train(make_optimizer, data, seed, lr, steps):
    x_tr, y_tr, x_va, y_va = data
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = make_optimizer(net.parameters(), lr)
    for i in range(steps):
        opt.zero_grad()
        loss = ((net(x_tr) - y_tr) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = ((net(x_va) - y_va) ** 2).mean().item()
    return -val
