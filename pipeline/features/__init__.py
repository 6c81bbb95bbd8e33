"""Frame features: the BN-Inception frame classifier (registered with timm), its per-split
fine-tuning, and the extraction of every frame's logits to HDF5 for the recurrent stage.

    import pipeline.features.bninception   # registers timm.create_model("bninception")
    from pipeline.features import Logits
    with Logits("results/features/breakfast/split1/logits.h5") as f:
        x, y = f.logits("P03_cam01_P03_cereals"), f.labels("P03_cam01_P03_cereals")

The names below load on first use: importing timm takes seconds, and the recurrent stage, which
only reads logits files, should not pay for it.
"""

import importlib

_LAZY = {
    "BNInception": ".bninception",
    "WeightsError": ".backbone",
    "create_backbone": ".backbone",
    "Logits": ".logits",
    "LogitsWriter": ".logits",
    "frame_accuracy": ".logits",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


__all__ = ["BNInception", "Logits", "LogitsWriter", "WeightsError", "create_backbone", "frame_accuracy"]
