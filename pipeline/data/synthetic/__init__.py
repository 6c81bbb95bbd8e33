"""The embedded synthetic kitchen datasets that the default workflow generates and runs on.

Three datasets stand in for Breakfast, 50 Salads and MPII Cooking 2. They share one task grammar
(`grammar.py`) but differ in label vocabulary and granularity, in visual style (`render.py`:
counter colour and texture, camera gain, object colours), and are written as real MPEG-4 videos plus
annotations in the native format of the dataset each stands for (`formats.py`), so the demo
exercises the real readers and the real decoder. The videos are MPEG-4 Part 2 from FFmpeg's own
encoder, not H.264: the libx264 that PyAV bundles wrote other bytes for the same frames depending on
what the process had done before (even on one thread), and every frame, logit and table downstream
followed; FFmpeg's encoder gives the same bytes whatever the process, machine or scheduler. Each
has several participants, so leave-person-out splits exist. Everything is deterministic given the seed.

    ddlstm synthetic --output resources/synthetic --seed 0
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...io import write_text
from ..videos import write_video
from .formats import WRITERS
from .grammar import ACTIVITIES, sample_timeline
from .render import Painter, Style, render_video

CODEC = "mpeg4"  # deterministic (see the module docstring)

HAND_COLOURS = [(0.93, 0.76, 0.65), (0.78, 0.57, 0.44), (0.55, 0.38, 0.26), (0.98, 0.84, 0.74), (0.4, 0.27, 0.18)]


@dataclass(frozen=True)
class SyntheticDataset:
    format: str  # native annotation format written (and read back)
    fps: float  # frame rate of video and labels
    style: Style
    activities: tuple[str, ...]  # what its participants prepare


DATASETS = {
    "synbreakfast": SyntheticDataset("breakfast", 15.0, Style((0.82, 0.72, 0.55), "stripes", 1.0, 0.0, 0, 0.02),
                                     ("cereals", "juice", "sandwich", "salad")),
    "synsalads": SyntheticDataset("salads", 30.0, Style((0.45, 0.5, 0.6), "checker", 0.8, 0.12, 1, 0.03),
                                  ("salad",)),
    "syncooking": SyntheticDataset("mpii", 15.0, Style((0.35, 0.45, 0.3), "speckle", 1.15, -0.05, 2, 0.025),
                                   ("sandwich", "salad", "juice", "cereals")),
}


@dataclass(frozen=True)
class Sizes:
    participants: int = 8  # per dataset; 4 leave-person-out splits need at least 4
    videos_per_participant: int = 2
    frame_size: int = 64  # square frames, even for yuv420p
    pace: float = 1.0  # scales every step's length (smaller: shorter videos)


def generate(root: str | Path, seed: int = 0, sizes: Sizes = Sizes(), names=tuple(DATASETS)) -> dict[str, dict]:
    """Write the synthetic datasets `names` under `root`/<name>/ and return their reader specs.

    Ends by writing `root`/manifest.json (specs, seed, sizes), so its presence means complete.
    """
    root = Path(root)
    if sizes.frame_size % 2:
        raise ValueError(f"frame_size must be even (yuv420p chroma is half size), got {sizes.frame_size}")
    specs = {}
    for dataset_index, name in enumerate(names):
        if name not in DATASETS:
            raise ValueError(f"unknown synthetic dataset {name!r}; choose from {sorted(DATASETS)}")
        definition = DATASETS[name]
        writer = WRITERS[definition.format](root / name, definition.fps)
        for participant in range(1, sizes.participants + 1):
            rng = np.random.default_rng([seed, dataset_index, participant])
            pace = sizes.pace * rng.uniform(0.8, 1.25)
            painter = Painter(sizes.frame_size, definition.style, HAND_COLOURS[participant % len(HAND_COLOURS)],
                              shift=tuple(rng.uniform(-0.03, 0.03, 2)))
            for index in range(sizes.videos_per_participant):
                activity = definition.activities[(participant + index) % len(definition.activities)]
                steps, num_frames = sample_timeline(activity, definition.fps, pace, rng)
                name_of_video = writer.video_name(participant, index, activity)
                write_video(writer.video_path(participant, index, activity),
                            render_video(steps, num_frames, painter, rng), definition.fps, codec=CODEC)
                writer.write(name_of_video, participant, activity, steps, num_frames, rng)
        writer.finish()
        specs[name] = writer.spec(name)
    write_text(root / "manifest.json", json.dumps({"seed": seed, "sizes": asdict(sizes), "datasets": specs}, indent=2))
    return specs


__all__ = ["ACTIVITIES", "DATASETS", "Sizes", "generate"]
