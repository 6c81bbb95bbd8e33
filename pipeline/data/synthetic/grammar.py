"""The shared task grammar of the synthetic kitchens, and each dataset's way of naming its steps.

All three synthetic datasets film the same activities, built from the same atomic steps
(verb, object): take an ingredient from the shelf, cut it on the board, put it in the bowl, pour
from a bottle, stir, put something back. What differs per dataset is the label vocabulary and its
granularity, as between Breakfast, 50 Salads and MPII Cooking 2:

- "coarse" (Breakfast-like): one label per step and object, cutting and putting into the bowl
  merged into "add_<object>";
- "fine" (50 Salads-like): every step split into _prep / _core / _post phases;
- "verbs" (MPII Cooking 2-like): the verb only, in words ("put in bowl"), objects not named.

"take" and "put back" trace the same path in opposite directions, so a single frame of either is
ambiguous and only the order of frames (temporal context) tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Activity -> blocks of steps; the blocks of an activity may be performed in any order, the last
# block (finishing) always comes last.
ACTIVITIES: dict[str, list[list[tuple[str, str]]]] = {
    "salad": [
        [("take", "tomato"), ("cut", "tomato"), ("put", "tomato")],
        [("take", "cucumber"), ("cut", "cucumber"), ("put", "cucumber")],
        [("take", "cheese"), ("cut", "cheese"), ("put", "cheese")],
        [("take", "oil"), ("pour", "oil"), ("return", "oil"), ("stir", "bowl")],
    ],
    "cereals": [
        [("take", "cereal"), ("pour", "cereal"), ("return", "cereal")],
        [("take", "milk"), ("pour", "milk"), ("return", "milk")],
        [("stir", "bowl")],
    ],
    "sandwich": [
        [("take", "bread"), ("cut", "bread"), ("put", "bread")],
        [("take", "cheese"), ("cut", "cheese"), ("put", "cheese")],
        [("take", "tomato"), ("cut", "tomato"), ("put", "tomato")],
        [("take", "oil"), ("pour", "oil"), ("return", "oil")],
    ],
    "juice": [
        [("take", "orange"), ("cut", "orange"), ("put", "orange")],
        [("take", "milk"), ("pour", "milk"), ("return", "milk")],
        [("stir", "bowl")],
    ],
}

# Typical step lengths in seconds, before each participant's pace and per-step jitter.
STEP_SECONDS = {"take": 1.2, "cut": 2.0, "put": 1.2, "pour": 1.6, "stir": 1.8, "return": 1.2}

VERB_WORDS = {"take": "take out", "cut": "cut", "put": "put in bowl", "pour": "pour", "stir": "stir",
              "return": "put back"}

PHASES = (("prep", 0.25), ("core", 0.5), ("post", 0.25))


@dataclass(frozen=True)
class Step:
    verb: str
    obj: str
    first: int  # first frame, 0-based
    last: int  # last frame, inclusive


def sample_timeline(activity: str, fps: float, pace: float, rng: np.random.Generator) -> tuple[list[Step], int]:
    """One performance of `activity`: its steps with frame ranges, and the video's length in frames.

    Blocks are shuffled (the finishing block stays last), idle pauses fall between some steps, and
    every video starts and ends with a few idle frames.
    """
    blocks = ACTIVITIES[activity]
    order = list(rng.permutation(len(blocks) - 1)) + [len(blocks) - 1]
    frame = int(rng.integers(3, 8))
    steps = []
    for block in order:
        for verb, obj in blocks[block]:
            length = max(4, round(STEP_SECONDS[verb] * fps * pace * rng.uniform(0.75, 1.3)))
            steps.append(Step(verb, obj, frame, frame + length - 1))
            frame += length
            if rng.random() < 0.3:
                frame += int(rng.integers(2, 7))  # an idle pause
    return steps, frame + int(rng.integers(3, 8))


def step_labels(step: Step, vocabulary: str) -> list[tuple[int, int, str]]:
    """The (first, last, label) ranges a dataset with `vocabulary` gives to one step."""
    if vocabulary == "coarse":
        name = f"add_{step.obj}" if step.verb in ("cut", "put") else f"{step.verb}_{step.obj}"
        return [(step.first, step.last, name)]
    if vocabulary == "verbs":
        return [(step.first, step.last, VERB_WORDS[step.verb])]
    if vocabulary == "fine":
        ranges, start = [], step.first
        length = step.last - step.first + 1
        for index, (phase, share) in enumerate(PHASES):
            end = step.last if index == len(PHASES) - 1 else start + max(1, round(share * length)) - 1
            ranges.append((start, end, f"{step.verb}_{step.obj}_{phase}"))
            start = end + 1
        return ranges
    raise ValueError(f"unknown vocabulary {vocabulary!r}")


def vocabulary_labels(vocabulary: str) -> list[str]:
    """Every label a vocabulary can produce, sorted (the dataset's class list, background aside)."""
    labels = set()
    for blocks in ACTIVITIES.values():
        for block in blocks:
            for verb, obj in block:
                labels.update(label for _, _, label in step_labels(Step(verb, obj, 0, 9), vocabulary))
    return sorted(labels)
