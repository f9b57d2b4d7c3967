"""Evaluation: the metrics and the feature network they are computed in."""
