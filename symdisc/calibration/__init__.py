"""Calibration: does a fitness predict real training? (issue 13; ``symdisc calibrate``)."""
