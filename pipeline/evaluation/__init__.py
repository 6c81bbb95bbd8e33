"""Evaluation of frame-wise predictions: segmentation metrics (`metrics.py`)."""
