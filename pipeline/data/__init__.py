"""Datasets: readers of the annotation formats, leave-person-out splits, frame decoding, and the
embedded synthetic kitchen datasets the default workflow runs on.

    from pipeline.data import load_dataset
    dataset = load_dataset({"name": "breakfast", "format": "mstcn", "annotations": "data/breakfast",
                            "fps": 15, "participant_pattern": r"^(P\\d+)"})
"""

from .dataset import AnnotationError, Dataset, Split, Video, resample_labels
from .readers import load_dataset
from .splits import leave_person_out

__all__ = ["AnnotationError", "Dataset", "Split", "Video", "leave_person_out", "load_dataset", "resample_labels"]
