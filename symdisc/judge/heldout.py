"""The held-out stage of the funnel (fidelity 2): a short real-data task the proxy never sees.

Proxy fitness can rise while real quality falls (meta-overfitting, as the Lion authors found), so
candidates near the proxy's best are also scored here: a Fashion-MNIST subset with 20% symmetric
label noise, validated on a disjoint subset of the TRAINING images with their clean labels (never
the test images, which `symdisc bench` reports on), a 784-32-10 MLP, seeds that the proxy does not
use, the half-decade learning-rate grid. See ``symdisc.judge.realdata`` for the trainer.

The sandbox worker builds the tasks before it locks itself down (``prepare``); afterwards it cannot
read files.
"""

from __future__ import annotations

from typing import Callable, Optional

from symdisc.config import HeldoutConfig
from symdisc.judge import realdata
from symdisc.judge.realdata import RealStage


def prepare(cfg: Optional[RealStage] = None) -> None:
    realdata.prepare(cfg or RealStage())


def heldout_fitness(update: Callable, memory: str, cfg: Optional[RealStage] = None, lrs=None) -> dict:
    return realdata.real_fitness(update, memory, cfg or RealStage(), lrs)
