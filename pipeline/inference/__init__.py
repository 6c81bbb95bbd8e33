"""Trained models on new recordings: a finished run exported as one file (`bundle.py`), every frame of
new inputs labelled online as the workflow evaluates (`predict.py`), and frame-at-a-time recognition
with memory bounded by the model's history (`stream.py`). `ddlstm export | predict | stream` are the
command lines (`cli.py`)."""

from .bundle import Bundle, BundleError, export_bundle, load_bundle
from .predict import Prediction, Predictor, write_prediction
from .stream import StreamEngine, stream

__all__ = ["Bundle", "BundleError", "Prediction", "Predictor", "StreamEngine", "export_bundle", "load_bundle",
           "stream", "write_prediction"]
