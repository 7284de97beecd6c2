"""Calibration of every fidelity against real training. Same as `symdisc calibrate`.

    flock /work/measure.lock python benchmarks/calibrate.py [--dir runs/calibration] [--phase truth|fidelity|report]

Resumes from its journal: run it again after a stop.
"""

from symdisc.calibration.run import main

if __name__ == "__main__":
    raise SystemExit(main())
