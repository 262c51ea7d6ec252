"""Evaluation: scores of 2D masks (``slices``) and of label volumes in 3D (``volumes``), one report
type each, and their writers. The `evaluate` command predicts with flexseg.inference and scores
here; no command holds scoring code of its own."""
