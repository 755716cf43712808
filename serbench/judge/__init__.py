"""Judging stored runs: metrics, statistics, conditions (runs grouped for comparison), ranking,
paired comparisons, published references and the calibration simulator."""
