"""Leave-person-out train/test splits: every participant is tested in exactly one split.

Participants are put in natural order ("P3" < "P10") and cut into `num_splits` contiguous groups
of near-equal size; split k tests group k and trains on the rest, so with 4 splits each trains on
about 75% of the people and tests on 25%. On Breakfast this reproduces the dataset's published
splits (s1 tests P03-P15, s2 P16-P28, ...).
"""

from __future__ import annotations

import re

import numpy as np

from .dataset import Split, natural_key


def leave_person_out(participant_of: dict[str, str], num_splits: int = 4) -> list[Split]:
    """Splits of the videos in `participant_of` (video name -> participant)."""
    participants = sorted(set(participant_of.values()), key=natural_key)
    if len(participants) < num_splits:
        raise ValueError(f"{num_splits} leave-person-out splits need at least {num_splits} participants, "
                         f"found {len(participants)}: {participants}")
    groups = np.array_split(np.arange(len(participants)), num_splits)
    names = sorted(participant_of, key=natural_key)
    splits = []
    for group in groups:
        tested = {participants[i] for i in group}
        splits.append(Split(train=[n for n in names if participant_of[n] not in tested],
                            test=[n for n in names if participant_of[n] in tested]))
    return splits


def participant_from_name(name: str, pattern: str) -> str:
    """The participant of a video, as the first group (or whole match) of regex `pattern` in its name."""
    match = re.search(pattern, name)
    if match is None:
        raise ValueError(f"video name {name!r} does not match the participant pattern {pattern!r}")
    return match.group(1) if match.groups() else match.group(0)
