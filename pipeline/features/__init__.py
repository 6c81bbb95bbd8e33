"""Frame features: the BN-Inception frame classifier (registered with timm), its per-split
fine-tuning, and the extraction of every frame's logits to HDF5 for the recurrent stage.

    import pipeline.features            # registers timm.create_model("bninception")
    from pipeline.features import Logits
    with Logits("results/features/breakfast/split1.h5") as f:
        x, y = f.logits("P03_cam01_P03_cereals"), f.labels("P03_cam01_P03_cereals")
"""

from .backbone import WeightsError, create_backbone
from .bninception import BNInception
from .logits import Logits, LogitsWriter, frame_accuracy

__all__ = ["BNInception", "Logits", "LogitsWriter", "WeightsError", "create_backbone", "frame_accuracy"]
