"""Calibration: does a fitness predict real training? (``symdisc calibrate``)."""
