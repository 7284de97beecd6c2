"""symdisc: symbolic discovery of neural-network optimizers on a CPU."""

__version__ = "0.1.0"
