"""Synthesised per-frame features for real label sequences: an MS-TCN folder to try the features
route, test it and study the models without the real features (which cannot be downloaded here).

From an MS-TCN folder's ground truth (`groundTruth/`, `mapping.txt`, optional `splits/`), a subset
of its videos (every k-th participant, a few videos each, so that leave-person-out splits still
exist) is written to a new MS-TCN folder with `features/<video>.npy` (D x T float32, as MS-TCN
stores them) made from the labels:

    x_t = distort(mu[y_t] + drift_t + noise_t)

* mu[c] ~ N(0, I_D): one mean per class, so a linear classifier can tell classes apart;
* noise_t ~ N(0, noise^2 I), independent per frame: what temporal context can average away;
* drift_t: AR(1) with coefficient 0.98 and stationary std `drift`, per video: slow changes that
  averaging cannot remove (lighting, camera, person);
* distort(v) = (v Q) * scale + shift, with a random rotation Q, per-dimension log-normal scales
  and offsets drawn from the dataset's own seed: the domain gap between datasets.

The numbers obtained on these features say how the pipeline behaves on real label sequences
(real lengths, orders and class frequencies), not how it does on real features.

    python -m pipeline synthetic-features --source data/breakfast --output resources/synfeatures/breakfast
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...io import write_text
from ..dataset import natural_key
from ..readers.common import read_mapping
from ..splits import participant_from_name

DEFAULT_PATTERN = r"^(?:rgb-)?([A-Za-z]*\d+)"


@dataclass(frozen=True)
class FeatureModel:
    dim: int = 64  # D
    noise: float = 6.0  # std of the independent per-frame noise
    drift: float = 1.0  # stationary std of the slow per-video drift
    drift_coefficient: float = 0.98  # AR(1) coefficient of the drift, per frame
    seed: int = 0  # with the dataset name, picks class means, distortion and noise


def _rng(seed: int, name: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *more])


def pick_videos(names: list[str], participant_pattern: str, participants: int | None,
                videos_per_participant: int | None) -> list[str]:
    """`participants` participants spread evenly over the natural order, the first
    `videos_per_participant` videos of each (None: all)."""
    by_person: dict[str, list[str]] = {}
    for name in sorted(names, key=natural_key):
        by_person.setdefault(participant_from_name(name, participant_pattern), []).append(name)
    people = sorted(by_person, key=natural_key)
    if participants is not None and participants < len(people):
        people = [people[i] for i in np.linspace(0, len(people) - 1, participants).round().astype(int)]
    return [name for person in people for name in by_person[person][:videos_per_participant]]


def synthesise(labels: np.ndarray, means: np.ndarray, model: FeatureModel, rng: np.random.Generator) -> np.ndarray:
    """(T, D) undistorted features of one video."""
    steps = len(labels)
    noise = rng.normal(0.0, model.noise, (steps, model.dim))
    innovation = rng.normal(0.0, model.drift * np.sqrt(1 - model.drift_coefficient ** 2), (steps, model.dim))
    drift = np.empty_like(innovation)
    drift[0] = rng.normal(0.0, model.drift, model.dim)
    for t in range(1, steps):  # AR(1); a few thousand steps of (D,) vectors
        drift[t] = model.drift_coefficient * drift[t - 1] + innovation[t]
    return means[labels] + drift + noise


def write_folder(source: str | Path, output: str | Path, name: str | None = None, model: FeatureModel = FeatureModel(),
                 participants: int | None = None, videos_per_participant: int | None = None,
                 participant_pattern: str = DEFAULT_PATTERN) -> list[str]:
    """Write the MS-TCN folder `output` (module docstring); returns the videos written. `name` (the
    source folder's name by default) seeds the dataset's class means and distortion."""
    source, output = Path(source), Path(output)
    name = name or source.name
    class_names = read_mapping(source / "mapping.txt")
    ids = {label: index for index, label in enumerate(class_names)}
    files = {path.stem: path for path in (source / "groundTruth").glob("*.txt")}
    if not files:
        raise FileNotFoundError(f"no ground-truth files {source}/groundTruth/*.txt")
    videos = pick_videos(list(files), participant_pattern, participants, videos_per_participant)
    rng = _rng(model.seed, name)
    means = rng.normal(0.0, 1.0, (len(class_names), model.dim))
    rotation, _ = np.linalg.qr(rng.normal(size=(model.dim, model.dim)))
    scale = np.exp(rng.normal(0.0, 0.3, model.dim))
    shift = rng.normal(0.0, 3.0, model.dim)
    (output / "groundTruth").mkdir(parents=True, exist_ok=True)
    (output / "features").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "mapping.txt", output / "mapping.txt")
    for index, video in enumerate(videos):
        text = files[video].read_text()
        labels = np.array([ids[line.strip()] for line in text.splitlines() if line.strip()], np.int64)
        values = synthesise(labels, means, model, _rng(model.seed, name, index + 1)) @ rotation * scale + shift
        temporary = output / "features" / f".{video}.part.npy"
        np.save(temporary, np.ascontiguousarray(values.T, dtype=np.float32))  # D x T, as MS-TCN
        temporary.replace(output / "features" / f"{video}.npy")
        write_text(output / "groundTruth" / f"{video}.txt", text)
    if (source / "splits").is_dir():  # the source's bundles, restricted to the videos written
        chosen = set(videos)
        for bundle in sorted((source / "splits").glob("*.bundle")):
            kept = [line for line in bundle.read_text().splitlines() if re.sub(r"\.txt$", "", line.strip()) in chosen]
            write_text(output / "splits" / bundle.name, "".join(f"{line}\n" for line in kept))
    write_text(output / "synthesis.json", json.dumps({"source": str(source), "name": name, "model": asdict(model),
                                                      "videos": videos}, indent=2) + "\n")
    return videos
