"""Line figures with a mean line and a ±1 std band per series (bench and compare use them)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Optional


def mean_band_figure(path: Path, series: dict, xlabel: str, ylabel: str, title: str,
                     hline: Optional[tuple] = None, marker: Optional[str] = None) -> Optional[Path]:
    """``series``: label -> (xs, list of y-curves of the same length as xs). Returns None without
    matplotlib (an optional dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, (xs, curves) in series.items():
        if not curves or not xs:
            continue
        mean = [statistics.mean(c[i] for c in curves) for i in range(len(xs))]
        std = [statistics.stdev([c[i] for c in curves]) if len(curves) > 1 else 0.0 for i in range(len(xs))]
        line, = ax.plot(xs, mean, marker=marker, label=label)
        ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.15)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", label=hline[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
