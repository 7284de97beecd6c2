"""What one step costs: CPU time against a reference on a tensor of the same size, and peak memory.

The reference is the work a step of training already does for a layer of that size: the forward
and backward pass of a linear layer whose weight is the parameter, viewed as a matrix, on a batch of
``REFERENCE_BATCH`` rows (three matrix products: y = x Wᵀ, dx = dy W, dW = dyᵀ x). It is measured in
the same process, with the same threads, so the ratio to it does not depend on the machine's speed,
and since the reference and a matrix-shaped rule are both matrix products their ratio hardly depends
on the BLAS either. A vector of n elements is measured against a square layer of n elements.

Memory is the peak of the bytes held by tensors the step creates, counted by a torch dispatch mode
that sees every tensor an operation returns (views share their storage and count once), divided
by the parameter's own bytes.
"""

from __future__ import annotations

import math
import time
import weakref
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

REFERENCE_BATCH = 1024


def matrix_view(shape: tuple) -> tuple[int, int]:
    """The (rows, columns) a reference layer of this parameter has: rows x rest for 2-D and more,
    the squarest factorisation for a vector."""
    if len(shape) >= 2:
        rows = shape[0]
        return rows, math.prod(shape) // max(rows, 1)
    n = math.prod(shape)
    rows = 2 ** (int(math.log2(max(n, 1))) // 2)
    while n % rows:
        rows //= 2
    return rows, n // rows


def cpu_seconds(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


_REFERENCE: dict = {}


def reference_seconds(shape: tuple, repeats: int = 3) -> float:
    """The least CPU time of the reference (forward and backward of a linear layer of this shape on
    REFERENCE_BATCH rows), measured once per shape and process."""
    rows, cols = matrix_view(tuple(shape))
    key = (rows, cols, torch.get_num_threads())
    if key not in _REFERENCE:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(rows, cols, generator=g)
        x = torch.randn(REFERENCE_BATCH, cols, generator=g)

        def layer():
            y = x @ w.T
            dy = y  # any upstream gradient of y's shape costs the same
            return dy @ w, dy.T @ x

        layer()  # first touch of the memory, BLAS start-up
        _REFERENCE[key] = min(cpu_seconds(layer) for _ in range(repeats))
    return _REFERENCE[key]


class PeakMemory(TorchDispatchMode):
    """Tracks the bytes held by tensors created inside the ``with`` block; ``peak`` is the most held
    at once. A storage counts from the first tensor returned on it until the last such tensor dies."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict = {}  # storage address -> [bytes, tensors alive]

    def _release(self, key):
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if type(value) is not torch.Tensor or value.device.type != "cpu":
                continue
            storage = value.untyped_storage()
            key = storage.data_ptr()
            if key == 0:
                continue
            entry = self._refs.get(key)
            if entry is None:
                entry = self._refs[key] = [storage.nbytes(), 0]
                self.live += entry[0]
                self.peak = max(self.peak, self.live)
            entry[1] += 1
            weakref.finalize(value, self._release, key)
        return out


def warm_up() -> None:
    """Run the dispatch mode and a reference once (lazy imports happen now, before lock-down)."""
    with PeakMemory():
        x = torch.randn(4, 4)
        (x @ x.T).sum()
    reference_seconds((4, 4), repeats=1)
