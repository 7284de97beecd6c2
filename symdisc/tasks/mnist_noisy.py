"""Very noisy MNIST: a 784-100-10 MLP on 8,192 training images with 40% of the labels flipped,
scored by clean validation accuracy on 2,000 other TRAINING images. The cascade's audit task (a
different network, data set and noise rate from fmnist-noisy), as a task file.
"""

import torch
import torch.nn.functional as F
from torch import nn

NAME = "mnist-noisy"
STEPS = 500
N_TRAIN, N_VAL, NOISE, BATCH = 8192, 2000, 0.4, 64


def prepare(seed: int):
    from symdisc.data import flip_labels, load

    ds = load("mnist")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(ds.x_train), generator=g)
    tr, va = perm[:N_TRAIN], perm[N_TRAIN: N_TRAIN + N_VAL]
    x = ds.x_train.flatten(1)
    return {"x_train": x[tr].clone(), "y_train": flip_labels(ds.y_train[tr], NOISE, ds.classes, g),
            "x_val": x[va].clone(), "y_val": ds.y_train[va].clone()}


def train(make_optimizer, data, seed: int, lr: float, steps: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    optimizer = make_optimizer(model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data["x_train"]), (BATCH,), generator=order)
        optimizer.zero_grad()
        F.cross_entropy(model(data["x_train"][idx]), data["y_train"][idx]).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(data["x_val"]).argmax(1) == data["y_val"]).float().mean().item()
    return accuracy
