"""Line figures with a mean line and a ±1 std band per series (bench and compare use them), the
bench's tuning figure (validation score against learning rate) and its performance profile across
tasks."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Optional


def _pyplot():
    """matplotlib's pyplot on the file backend, or None without matplotlib (an optional dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _canvas():
    """(pyplot, figure, axes) of the bench's figure size, or None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    return plt, fig, ax


def _save(fig, ax, plt, path: Path, xlabel: str, ylabel: str, title: str, log_x: bool = False) -> Path:
    """Labels, grid and legend, then the file; the figure is closed."""
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def mean_band_figure(path: Path, series: dict, xlabel: str, ylabel: str, title: str,
                     hline: Optional[tuple] = None, marker: Optional[str] = None) -> Optional[Path]:
    """``series``: label -> (xs, list of y-curves of the same length as xs). Returns None without
    matplotlib (an optional dependency)."""
    made = _canvas()
    if made is None:
        return None
    plt, fig, ax = made
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
    return _save(fig, ax, plt, path, xlabel, ylabel, title)


def tuning_figure(path: Path, tuned: dict, title: str) -> Optional[Path]:
    """``tuned``: label -> {"scores": [(lr, wd, score)], "lr", "weight_decay"} (bench/tune.py). One line
    per optimizer (and weight decay), log learning rate on x, the chosen point circled. Returns None
    without matplotlib or without any tuned optimizer."""
    curves = {label: t for label, t in tuned.items() if t.get("scores")}
    if not curves:
        return None
    made = _canvas()
    if made is None:
        return None
    plt, fig, ax = made
    for label, t in curves.items():
        wds = sorted({s[1] for s in t["scores"]})
        for wd in wds:
            points = sorted((s[0], s[2]) for s in t["scores"] if s[1] == wd)
            name = label if len(wds) == 1 else f"{label} (wd {wd:g})"
            line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
            if wd == t["weight_decay"]:
                best = [p for p in points if p[0] == t["lr"]]
                if best:
                    ax.plot([best[0][0]], [best[0][1]], marker="o", markersize=12, markerfacecolor="none",
                            color=line.get_color())
    return _save(fig, ax, plt, path, "learning rate", "validation accuracy (split of the training data)", title,
                 log_x=True)


def profile_figure(path: Path, profile: dict, unit: str, title: str) -> Optional[Path]:
    """An AlgoPerf-style performance profile: per optimizer, the fraction of tasks on which its time to
    the target is within a factor tau of the fastest optimizer's, against tau (log scale). ``profile``:
    bench/report.py's ``profile()`` answer; ``unit``: one of its ``by`` keys."""
    curves = profile.get("by", {}).get(unit) or {}
    if not curves:
        return None
    made = _canvas()
    if made is None:
        return None
    plt, fig, ax = made
    for label, p in curves.items():
        ax.step(p["taus"], p["fraction"], where="post", label=f"{label} (area {p['area']:.2f})")
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, ax, plt, path, "tau: time to target / the fastest optimizer's", "fraction of tasks", title,
                 log_x=True)
