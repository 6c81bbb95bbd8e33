"""Writing a synthetic performance in the native files of the dataset it stands for.

Each writer takes the video's steps (frame ranges) and writes the annotation exactly as the real
dataset ships it, so the demo runs through the same readers as real data:

- Breakfast: `segmentation/<activity>/labels/<P>_cam01_<P>_<activity>.txt`, "start-end label",
  1-based inclusive, background "SIL"; the recording at `videos/<P>/cam01/<P>_<activity>.mp4`.
- 50 Salads: `ann/sequences/<id>-activityAnnotation.txt` (CRLF, "start_ts end_ts label", high-level
  lines first), `timestamps/timestamps-<id>.txt` (a microsecond clock with jitter), the label lists
  under `ann/`; the recording at `rgb/rgb-<id>.mp4`.
- MPII Cooking 2: one `annotations.csv` of "subject,file_name,start_frame,end_frame,category_id,
  category_name" rows (1-based inclusive, idle frames as "background activity"); recordings at
  `videos/<name>.mp4`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...io import write_text
from .grammar import Step, step_labels, vocabulary_labels

HIGH_LEVEL = {"take": "cut_and_mix_ingredients", "cut": "cut_and_mix_ingredients", "put": "cut_and_mix_ingredients",
              "pour": "prepare_dressing", "return": "prepare_dressing", "stir": "serve_salad"}
MPII_BACKGROUND = "background activity"


def labelled_ranges(steps: list[Step], vocabulary: str, num_frames: int, background: str):
    """(first, last, label) tiling the whole video, idle frames as `background`, equal neighbours merged."""
    ranges, frame = [], 0
    for step in steps:
        if step.first > frame:
            ranges.append((frame, step.first - 1, background))
        ranges.extend(step_labels(step, vocabulary))
        frame = step.last + 1
    if frame < num_frames:
        ranges.append((frame, num_frames - 1, background))
    merged = [ranges[0]]
    for first, last, label in ranges[1:]:
        if label == merged[-1][2]:
            merged[-1] = (merged[-1][0], last, label)
        else:
            merged.append((first, last, label))
    return merged


class BreakfastWriter:
    format = "breakfast"
    vocabulary = "coarse"
    background = "SIL"

    def __init__(self, root: Path, fps: float):
        self.root = root
        self.fps = fps
        self.activities: set[str] = set()

    def video_name(self, participant: int, index: int, activity: str) -> str:
        return f"P{participant:02d}_cam01_P{participant:02d}_{activity}"

    def video_path(self, participant: int, index: int, activity: str) -> Path:
        return self.root / "videos" / f"P{participant:02d}" / "cam01" / f"P{participant:02d}_{activity}.mp4"

    def write(self, name, participant, activity, steps, num_frames, rng):
        self.activities.add(activity)
        ranges = labelled_ranges(steps, self.vocabulary, num_frames, self.background)
        text = "".join(f"{first + 1}-{last + 1} {label}  \n" for first, last, label in ranges)
        write_text(self.root / "segmentation" / activity / "labels" / f"{name}.txt", text)

    def finish(self):
        for activity in sorted(self.activities):
            write_text(self.root / "segmentation" / activity / "actions.txt", "\n".join(vocabulary_labels("coarse")) + "\n")

    def spec(self, name):
        return {"name": name, "format": "breakfast", "annotations": str(self.root / "segmentation"),
                "videos": str(self.root / "videos"), "fps": self.fps}


class SaladsWriter:
    format = "salads"
    vocabulary = "fine"

    def __init__(self, root: Path, fps: float):
        self.root = root
        self.fps = fps

    def video_name(self, participant: int, index: int, activity: str) -> str:
        return f"rgb-{participant:02d}-{index + 1}"

    def video_path(self, participant: int, index: int, activity: str) -> Path:
        return self.root / "rgb" / f"{self.video_name(participant, index, activity)}.mp4"

    def write(self, name, participant, activity, steps, num_frames, rng):
        sequence = name.removeprefix("rgb-")
        interval = 1e6 / self.fps
        stamps = np.cumsum(np.concatenate([[rng.integers(40_000_000, 60_000_000)],
                                           np.round(interval + rng.uniform(-1500, 1500, num_frames - 1))])).astype(np.int64)
        write_text(self.root / "timestamps" / f"timestamps-{sequence}.txt",
                   "".join(f"{stamp} rgb-{sequence}-{t:05d}.png\n" for t, stamp in enumerate(stamps)))

        def span(first, last):  # a margin under a third of a frame keeps every frame on its side
            return (int(stamps[first] - rng.uniform(0, 0.3) * interval), int(stamps[last] + rng.uniform(0, 0.3) * interval))

        lines = []
        for high in dict.fromkeys(HIGH_LEVEL[s.verb] for s in steps):
            covered = [s for s in steps if HIGH_LEVEL[s.verb] == high]
            lines.append((*span(covered[0].first, covered[-1].last), high))
        for step in steps:
            lines.extend((*span(first, last), label) for first, last, label in step_labels(step, self.vocabulary))
        write_text(self.root / "ann" / "sequences" / f"{sequence}-activityAnnotation.txt",
                   "".join(f"{start} {end} {label}\n" for start, end, label in lines), newline="\r\n")

    def finish(self):
        write_text(self.root / "ann" / "low_level_actions.txt", "\n".join(vocabulary_labels("fine")) + "\n")
        write_text(self.root / "ann" / "high_level_actions.txt", "\n".join(sorted(set(HIGH_LEVEL.values()))))

    def spec(self, name):
        return {"name": name, "format": "salads", "annotations": str(self.root), "videos": str(self.root / "rgb"),
                "fps": self.fps}


class CookingWriter:
    format = "mpii"
    vocabulary = "verbs"

    def __init__(self, root: Path, fps: float):
        self.root = root
        self.fps = fps
        self.rows: list[str] = []
        self.category_ids = {MPII_BACKGROUND: 1}
        for label in vocabulary_labels("verbs"):
            self.category_ids[label] = len(self.category_ids) + 1

    def video_name(self, participant: int, index: int, activity: str) -> str:
        return f"s{participant:02d}-d{index + 1:02d}-cam-002"

    def video_path(self, participant: int, index: int, activity: str) -> Path:
        return self.root / "videos" / f"{self.video_name(participant, index, activity)}.mp4"

    def write(self, name, participant, activity, steps, num_frames, rng):
        for first, last, label in labelled_ranges(steps, self.vocabulary, num_frames, MPII_BACKGROUND):
            self.rows.append(f"s{participant:02d},{name},{first + 1},{last + 1},{self.category_ids[label]},{label}\n")

    def finish(self):
        write_text(self.root / "annotations.csv", "".join(self.rows))

    def spec(self, name):
        return {"name": name, "format": "mpii", "annotations": str(self.root / "annotations.csv"),
                "videos": str(self.root / "videos"), "fps": self.fps, "background": MPII_BACKGROUND}


WRITERS = {"breakfast": BreakfastWriter, "salads": SaladsWriter, "mpii": CookingWriter}
