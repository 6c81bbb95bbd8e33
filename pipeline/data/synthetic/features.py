"""Synthesised per-frame features for real label sequences: an MS-TCN folder to try the features
route, test it and study the models without the real features (which cannot be downloaded here).

From an MS-TCN folder's ground truth (`groundTruth/`, `mapping.txt`, optional `splits/`), a subset
of its videos (every k-th participant, a few videos each, so that leave-person-out splits still
exist) is written to a new MS-TCN folder with `features/<video>.npy` (D x T float32, as MS-TCN
stores them) made from the labels:

    x_t = distort(mu[y_t] + person[p] + drift_t + smooth_t + white_t)

* mu[c] = separation * (sqrt(verb_share) V[verb(c)] + sqrt(object_share) O[objects(c)]
  + sqrt(1 - verb_share - object_share) E[c]), every part ~ N(0, I_D): a class's mean is built
  from parts it shares with visually similar classes. A class name is split into a verb (its first
  word) and objects (the other words; `_`, `2` and camel case separate words, "into", "onto", "on",
  "to" dropped), so `pour_milk` and `pour_cereals` share V[pour], `cut_tomato` and
  `place_tomato_into_bowl` share O[tomato]; O[objects(c)] is the sum of the object parts over the
  square root of their number, and a class without objects (`SIL`) gives the object share to its
  own part E[c]. With both shares 0 every class has a mean of its own (the first model's);
* person[p] ~ N(0, participant^2 I), one offset per participant, the same in all of that person's
  videos: a test participant's offset is never seen in training;
* white_t ~ N(0, noise^2 (1 - smooth) I), independent per frame: what temporal context averages
  away;
* smooth_t: AR(1) with coefficient `smooth_coefficient` per frame and stationary std
  noise * sqrt(smooth), per video: noise that averaging over a few frames does not remove (the
  per-frame noise has std `noise` in all, a share `smooth` of its variance smooth);
* drift_t: AR(1) with coefficient `drift_coefficient` (0.98) and stationary std `drift`, per video:
  slower changes still (lighting, camera);
* distort(v) = (v Q) * scale + shift, with a random rotation Q, per-dimension log-normal scales
  (log-std 0.3 * gap) and offsets (std 3 * gap) drawn from the dataset's own seed, followed with
  `positive` by softplus(.) (non-negative, as I3D's pooled post-ReLU features): the domain gap
  between datasets. Without `positive` the distortion is affine and the linear frame classifier
  fitted per dataset undoes it; with it the classifier cannot entirely, and the larger `gap`, the
  more of each dataset's dimensions softplus compresses (different ones per dataset). A preset
  can also give a dataset parameters of its own (an entry under its name).

Presets (`PRESETS`, `feature_model`): "v1" is the first model and `FeatureModel()`'s defaults
(own class means, white noise 6, drift 1, affine distortion: the new parts all off), what
`write_folder` and `ddlstm synthetic-features` take unless told (`DEFAULT_PRESET`);
"v2" the harder one, calibrated so that the convergence study's joint LSTM lands near published
online accuracies (Breakfast ~28 %, 50 Salads mid-level ~60 %, the frame classifier ~17 / ~26 %;
docs/studies/convergence.md), one model for both datasets. v2 is not the default because the
demo-size features route (config/synfeatures.yaml, the workflow test's tiny runs) cannot learn
it in a few hundred steps.

The numbers obtained on these features say how the pipeline behaves on real label sequences
(real lengths, orders and class frequencies), not how it does on real features.

    ddlstm synthetic-features --source data/breakfast --output resources/synfeatures/breakfast
    ddlstm synthetic-features --source data/breakfast --output harder/breakfast --preset v2
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from ...io import write_text
from ..dataset import natural_key
from ..readers.common import read_mapping
from ..splits import participant_from_name

DEFAULT_PATTERN = r"^(?:rgb-)?([A-Za-z]*\d+)"
STOPWORDS = frozenset({"into", "onto", "on", "to"})
# extra seed words of the random streams added after the first model (whose draws stay as they were)
_PARTS, _PERSON, _SMOOTH = 2, 3, 4


@dataclass(frozen=True)
class FeatureModel:
    dim: int = 64  # D
    noise: float = 6.0  # std of the per-frame noise (white and smooth together)
    drift: float = 1.0  # stationary std of the slow per-video drift
    drift_coefficient: float = 0.98  # AR(1) coefficient of the drift, per frame
    seed: int = 0  # with the dataset name, picks class means, distortion and noise
    separation: float = 1.0  # std of the class means
    verb_share: float = 0.0  # share of a class mean's variance from its verb's part
    object_share: float = 0.0  # ... from its objects' parts
    participant: float = 0.0  # std of the per-participant offset
    smooth: float = 0.0  # share of the per-frame noise variance that is AR(1)
    smooth_coefficient: float = 0.95  # AR(1) coefficient of the smooth noise, per frame
    gap: float = 1.0  # strength of the per-dataset distortion
    positive: bool = False  # softplus after the distortion


HELP = {"dim": "feature dimension D", "noise": "std of the per-frame noise (white and smooth)",
        "drift": "std of the slow per-video drift", "drift_coefficient": "AR(1) coefficient of the drift",
        "seed": "random seed", "separation": "std of the class means",
        "verb_share": "share of a class mean's variance from its verb's part",
        "object_share": "share of a class mean's variance from its objects' parts",
        "participant": "std of the per-participant offset",
        "smooth": "share of the per-frame noise variance that is AR(1) (temporally smooth)",
        "smooth_coefficient": "AR(1) coefficient of the smooth noise",
        "gap": "strength of the per-dataset distortion (log-std 0.3 gap of the scales, std 3 gap of the offsets)",
        "positive": "softplus after the distortion (non-negative features)"}
# a preset: {"*": changes from FeatureModel() for every dataset, <dataset name>: changes for that one}
V2 = {"verb_share": 0.4, "object_share": 0.3, "participant": 1.0, "smooth": 0.3, "gap": 2.0, "positive": True}
PRESETS: dict[str, dict[str, dict]] = {"v1": {"*": {}}, "v2": {"*": V2}}
DEFAULT_PRESET = "v1"


def feature_model(name: str, preset: str = DEFAULT_PRESET, **changes) -> FeatureModel:
    """The feature model of dataset `name` under `preset` (its entry for the name, else its "*"),
    with `changes` (field values) applied."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, not {preset!r}")
    entries = PRESETS[preset]
    return replace(FeatureModel(), **{**entries.get(name, entries.get("*", {})), **changes})


def model_fields() -> list[str]:
    return [field.name for field in fields(FeatureModel)]


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


def class_parts(name: str) -> tuple[str, tuple[str, ...]]:
    """(verb, objects) of a class name: `put_egg2plate` -> ("put", ("egg", "plate"))."""
    words = [w.lower() for w in re.split(r"[_\s2]+|(?<=[a-z])(?=[A-Z])", name) if w]
    words = [w for w in words if w not in STOPWORDS] or [name.lower()]
    return words[0], tuple(words[1:])


def class_means(class_names: list[str], own: np.ndarray, model: FeatureModel, rng: np.random.Generator) -> np.ndarray:
    """(C, D) class means from their own parts `own` (C, D) and shared verb and object parts."""
    if not (model.verb_share or model.object_share):
        return own * model.separation if model.separation != 1 else own
    if model.verb_share < 0 or model.object_share < 0 or model.verb_share + model.object_share > 1:
        raise ValueError(f"verb_share and object_share must be >= 0 with a sum <= 1, got {model}")
    parts = [class_parts(name) for name in class_names]
    words = sorted({verb for verb, _ in parts} | {f"/{o}" for _, objects in parts for o in objects})
    vectors = dict(zip(words, rng.normal(0.0, 1.0, (len(words), own.shape[1]))))
    means = np.empty_like(own)
    for index, (verb, objects) in enumerate(parts):
        object_share = model.object_share if objects else 0.0
        mean = np.sqrt(model.verb_share) * vectors[verb] + np.sqrt(1 - model.verb_share - object_share) * own[index]
        if objects:
            mean += np.sqrt(object_share / len(objects)) * sum(vectors[f"/{o}"] for o in objects)
        means[index] = mean
    return means * model.separation


def _ar1(rng: np.random.Generator, steps: int, dim: int, std: float, coefficient: float) -> np.ndarray:
    """(steps, dim) stationary AR(1) with std `std`; a few thousand steps of (D,) vectors."""
    innovation = rng.normal(0.0, std * np.sqrt(1 - coefficient ** 2), (steps, dim))
    out = np.empty_like(innovation)
    out[0] = rng.normal(0.0, std, dim)
    for t in range(1, steps):
        out[t] = coefficient * out[t - 1] + innovation[t]
    return out


def synthesise(labels: np.ndarray, means: np.ndarray, model: FeatureModel, rng: np.random.Generator,
               offset: np.ndarray | float = 0.0, smooth_rng: np.random.Generator | None = None) -> np.ndarray:
    """(T, D) undistorted features of one video; `offset` its participant's."""
    steps = len(labels)
    white = rng.normal(0.0, model.noise * np.sqrt(1 - model.smooth), (steps, model.dim))
    values = means[labels] + _ar1(rng, steps, model.dim, model.drift, model.drift_coefficient) + white
    if model.smooth:
        values += _ar1(smooth_rng if smooth_rng is not None else rng, steps, model.dim,
                       model.noise * np.sqrt(model.smooth), model.smooth_coefficient)
    return values + offset


def write_folder(source: str | Path, output: str | Path, name: str | None = None, model: FeatureModel | None = None,
                 participants: int | None = None, videos_per_participant: int | None = None,
                 participant_pattern: str = DEFAULT_PATTERN) -> list[str]:
    """Write the MS-TCN folder `output` (module docstring); returns the videos written. `name` (the
    source folder's name by default) seeds the dataset's class means and distortion and, without
    `model`, picks the default preset's model for it (`feature_model`)."""
    source, output = Path(source), Path(output)
    name = name or source.name
    model = feature_model(name) if model is None else model
    if not 0 <= model.smooth <= 1:
        raise ValueError(f"smooth is a share of the noise variance, in [0, 1]; got {model.smooth}")
    class_names = read_mapping(source / "mapping.txt")
    ids = {label: index for index, label in enumerate(class_names)}
    files = {path.stem: path for path in (source / "groundTruth").glob("*.txt")}
    if not files:
        raise FileNotFoundError(f"no ground-truth files {source}/groundTruth/*.txt")
    videos = pick_videos(list(files), participant_pattern, participants, videos_per_participant)
    rng = _rng(model.seed, name)
    own = rng.normal(0.0, 1.0, (len(class_names), model.dim))
    rotation, _ = np.linalg.qr(rng.normal(size=(model.dim, model.dim)))
    scale = np.exp(rng.normal(0.0, 0.3 * model.gap, model.dim))
    shift = rng.normal(0.0, 3.0 * model.gap, model.dim)
    means = class_means(class_names, own, model, _rng(model.seed, name, 0, _PARTS))
    (output / "groundTruth").mkdir(parents=True, exist_ok=True)
    (output / "features").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "mapping.txt", output / "mapping.txt")
    for index, video in enumerate(videos):
        text = files[video].read_text()
        labels = np.array([ids[line.strip()] for line in text.splitlines() if line.strip()], np.int64)
        person = participant_from_name(video, participant_pattern)
        offset = (_rng(model.seed, name, 0, _PERSON, zlib.crc32(person.encode())).normal(0.0, model.participant,
                                                                                           model.dim)
                  if model.participant else 0.0)
        values = synthesise(labels, means, model, _rng(model.seed, name, index + 1), offset,
                            _rng(model.seed, name, index + 1, _SMOOTH)) @ rotation * scale + shift
        if model.positive:
            values = np.logaddexp(0.0, values)  # softplus
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
