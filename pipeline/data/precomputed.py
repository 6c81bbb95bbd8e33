"""Precomputed per-frame features: one array per video in a folder, `<folder>/<video>.npy`, the form
in which most users hold Breakfast, 50 Salads and GTEA (the MS-TCN release: I3D features,
2048 x T per video). A dataset read this way skips decoding and CNN fine-tuning.

Orientation. MS-TCN stores D x T (a row per feature dimension). An array is read as D x T when its
second axis matches the video's label count within the tolerance, and as T x D when only its first
axis does. When both do (D close to T), the orientation whose D equals that of the dataset's other
arrays wins; when that does not decide either (a square array, T = D) the array is read as D x T,
and the log and the report say that it was ambiguous. A dataset's `feature_layout` ("DxT" or
"TxD"; "auto" by default) fixes the orientation of all its arrays instead.

Checks (`FeatureSource.check`, run by the workflow before any training): a missing file, a file
that is not a 2-D real-valued .npy array (an .npz archive under a .npy name included), an array
whose D differs from the dataset's, NaN or inf values once converted to the float32 the pipeline
computes in (a float64 1e300 is finite on disk and infinite after), a length that disagrees with
the labels beyond the tolerance, and a magnitude far outside the dataset's own: an array whose root
mean square is more than MAGNITUDE_FACTOR (100) times the median of the dataset's arrays, or less
than 1/100 of it. One network's features of one dataset differ from video to video by far less
than two orders of magnitude (the synthesised folders here by less than 1.5x; I3D's are averaged
activations of one fixed network over similar kitchen footage), while a file from another
extractor, a wrong dtype or a corrupt write differs by many: a single such video would otherwise
set the standardisation of every other. Each problem is an error naming the file; all problems of
a dataset are reported at once. Every step that reads features (the linear classifier too) refuses
non-finite values, naming the file, whatever the check said.

Alignment and rate. Features are at the labels' rate (the dataset's `fps`). Row k is aligned with
label k by the mismatch policy of `alignment.py` (extra rows at the end dropped, missing ones
repeating the last row), then both are resampled to another rate by `resample_index`, the rule
labels and decoded frames follow, so feature row k and label k stay the same frame.

Memory. Arrays are memory-mapped and read one video at a time; nothing here holds a dataset's
features at once (Breakfast's I3D release is ~29 GB).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import write_csv
from .alignment import aligned_index, alignment_action, allowed_mismatch
from .dataset import resample_index

EXTENSION = ".npy"
CHUNK_ELEMENTS = 1 << 24  # values checked for NaN / inf at a time (64 MB of float32)
LAYOUTS = ("auto", "DxT", "TxD")
MAGNITUDE_FACTOR = 100.0  # an array's RMS beyond this factor of the dataset's median (either way) is refused
log = logging.getLogger(__name__)


class FeatureError(ValueError):
    """Precomputed features that cannot be used as documented; the message names the file(s)."""


@dataclass
class FeatureReport:
    video: str
    path: str
    layout: str  # "DxT" or "TxD", as found in the file
    dim: int  # feature dimension D
    features: int  # frames in the file
    labels: int  # frames labelled (at the dataset's fps), the count used
    action: str  # "exact", "dropped N", "padded N"
    rms: float  # root mean square of its values (the magnitude check)
    note: str = ""  # e.g. that its orientation was ambiguous and which was taken


@dataclass
class FeatureArray:
    """One video's array as found on disk (header only until read)."""

    path: Path
    layout: str  # "DxT" or "TxD"
    frames: int
    dim: int
    ambiguous: bool = False  # both axes matched the labels and D did not decide

    def read(self, rows: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), D) float32 of the frames `rows` (all frames when None), into `out` if given;
        FeatureError naming the file where a value is NaN or infinite in float32."""
        array = open_array(self.path)
        if rows is None:
            rows = np.arange(self.frames)
        if out is None:
            out = np.empty((len(rows), self.dim), np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # a float64 beyond float32's range becomes inf
            out[...] = array[:, rows].T if self.layout == "DxT" else array[rows]
        if not np.isfinite(out).all():
            raise FeatureError(f"{self.path}: contains NaN or infinite values (as float32, which the pipeline "
                               "computes in)")
        return out

    def note(self) -> str:
        if not self.ambiguous:
            return ""
        other = "TxD" if self.layout == "DxT" else "DxT"
        return (f"orientation ambiguous (both axes match the labels): read as {self.layout}; set the dataset's "
                f"feature_layout: {other} to read it the other way")


def feature_file(folder: str | Path, video: str) -> Path:
    return Path(folder) / f"{video}{EXTENSION}"


def attach_features(dataset, folder: str | Path) -> None:
    """Set `features_path` on every video of `dataset` from `folder`; missing arrays are an error
    naming the files expected."""
    folder = Path(folder)
    if folder.is_file():
        raise FeatureError(f"{folder}: dataset {dataset.name!r}'s 'features' is a file; it must be the folder "
                           f"holding one <video>{EXTENSION} array per video")
    if not folder.is_dir():
        raise FeatureError(f"feature folder {folder} of dataset {dataset.name!r} does not exist")
    missing = []
    for video in dataset.videos.values():
        path = feature_file(folder, video.name)
        video.features_path = path
        if not path.is_file():
            missing.append(str(path))
    if missing:
        raise FeatureError(f"dataset {dataset.name!r}: {len(missing)} of {len(dataset.videos)} videos have no "
                           f"feature array, e.g. {', '.join(missing[:3])} (expected <features>/<video>{EXTENSION})")


def open_array(path: Path) -> np.ndarray:
    """The array in `path`, memory-mapped; FeatureError naming the file if it is not a 2-D real array."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FeatureError(f"{path}: feature array does not exist") from None
    except (ValueError, OSError, EOFError) as error:
        raise FeatureError(f"{path}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever the file is called
        names = list(getattr(array, "files", []))
        raise FeatureError(f"{path}: an .npz archive (holding {names[:3]}), not a .npy array; save each video's "
                           "array with numpy.save")
    if array.ndim != 2:
        raise FeatureError(f"{path}: expected a 2-D array (D x T or T x D), found shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise FeatureError(f"{path}: expected real numbers, found dtype {array.dtype}")
    if 0 in array.shape:
        raise FeatureError(f"{path}: empty array of shape {array.shape}")
    return array


def orient(path: Path, shape: tuple[int, int], num_labels: int, tolerance: int, dim: int | None,
           layout: str = "auto") -> FeatureArray:
    """Which axis is time (module docstring); FeatureError naming the file when neither fits (or the
    fixed `layout` does not)."""
    layouts = {"DxT": (shape[1], shape[0]), "TxD": (shape[0], shape[1])}  # layout -> (frames, dim)
    candidates = list(layouts) if layout == "auto" else [layout]
    fits = [name for name in candidates if abs(layouts[name][0] - num_labels) <= tolerance]
    if not fits:
        fixed = "" if layout == "auto" else f" as {layout} (the dataset's feature_layout)"
        raise FeatureError(f"{path}: shape {shape} has no axis matching the video's {num_labels} labelled frames"
                           f"{fixed} (tolerance {tolerance} frames)")
    if len(fits) == 2 and dim is not None:
        fits = [name for name in fits if layouts[name][1] == dim] or fits
    frames, found_dim = layouts[fits[0]]
    return FeatureArray(path, fits[0], frames, found_dim, ambiguous=len(fits) == 2)


def scan_values(array: np.ndarray) -> tuple[bool, float]:
    """(every value finite as float32, root mean square), a chunk of rows at a time."""
    step = max(1, CHUNK_ELEMENTS // array.shape[1])
    squares, finite = 0.0, True
    for start in range(0, array.shape[0], step):
        with np.errstate(over="ignore", invalid="ignore"):
            chunk = np.asarray(array[start:start + step], dtype=np.float32)
        finite = finite and bool(np.isfinite(chunk).all())
        if finite:
            squares += float(np.square(chunk, dtype=np.float64).sum())
    return finite, (squares / array.size) ** 0.5 if finite else float("nan")


def magnitude_outliers(scales: dict[str, float], what: str = "the dataset's arrays") -> list[str]:
    """One message per entry of `scales` (a name -> root mean square) whose magnitude is beyond
    MAGNITUDE_FACTOR of their median, either way (module docstring)."""
    if len(scales) < 3:  # a median of two cannot tell which one is odd
        return []
    median = float(np.median(list(scales.values())))
    if median <= 0:
        return []
    problems = []
    for name, rms in scales.items():
        ratio = rms / median
        if ratio > MAGNITUDE_FACTOR or ratio < 1 / MAGNITUDE_FACTOR:
            problems.append(f"{name}: values of magnitude {rms:.3g} (root mean square), {ratio:.3g} times the median "
                            f"{median:.3g} of {what}: corrupt, or from another extractor? (beyond "
                            f"{MAGNITUDE_FACTOR:g}x either way is refused)")
    return problems


class FeatureSource:
    """The features of every video of a dataset, aligned with its labels and resampled to `fps`.

    `dataset` is at its own (the labels') rate, with `features_path` set on every video.
    """

    def __init__(self, dataset, fps: float | None = None, tolerance_frames: int = 10,
                 tolerance_fraction: float = 0.02):
        self.dataset = dataset
        self.fps = dataset.fps if fps is None else float(fps)
        self.tolerance_frames = tolerance_frames
        self.tolerance_fraction = tolerance_fraction
        without = [v.name for v in dataset.videos.values() if v.features_path is None]
        if without:
            raise FeatureError(f"dataset {dataset.name!r}: no feature array attached to {without[:3]} "
                               f"({len(without)} videos); set 'features' in its spec")
        self._arrays: dict[str, FeatureArray] = {}
        self.dim: int | None = None

    def tolerance(self, num_labels: int) -> int:
        return allowed_mismatch(num_labels, self.tolerance_frames, self.tolerance_fraction)

    @property
    def layout(self) -> str:
        return getattr(self.dataset, "feature_layout", "auto")

    def _survey(self) -> int:
        """The dataset's feature dimension: the most common D among its readable arrays (an ambiguous
        one read as D x T), so that one odd file is reported as the odd one, whichever comes first."""
        dims = []
        for video in self.dataset.videos.values():
            try:
                shape = open_array(video.features_path).shape
                found = orient(video.features_path, shape, video.num_frames, self.tolerance(video.num_frames), None,
                               self.layout)
            except FeatureError:
                continue  # reported when that video is read or checked
            dims.append(found.dim)
        values, counts = np.unique(dims, return_counts=True)
        return int(values[counts.argmax()]) if len(values) else -1

    def array(self, name: str) -> FeatureArray:
        """The header of one video's array, oriented and checked against the labels and D."""
        if self.dim is None:
            self.dim = self._survey()
        if name not in self._arrays:
            video = self.dataset.videos[name]
            shape = open_array(video.features_path).shape
            found = orient(video.features_path, shape, video.num_frames, self.tolerance(video.num_frames), self.dim,
                           self.layout)
            if found.ambiguous:
                log.warning("%s: %s", found.path, found.note())
            if found.dim != self.dim:
                raise FeatureError(f"{video.features_path}: {found.dim} feature dimensions ({found.layout} shape "
                                   f"{shape}), the dataset's other arrays have {self.dim}")
            self._arrays[name] = found
        return self._arrays[name]

    def num_frames(self, name: str) -> int:
        """Frames of the video at `fps`."""
        video = self.dataset.videos[name]
        return len(resample_index(video.num_frames, self.dataset.fps, self.fps))

    def rows(self, name: str) -> np.ndarray:
        """Row of the file shown at each frame of the video at `fps`."""
        video = self.dataset.videos[name]
        aligned = aligned_index(self.array(name).frames, video.num_frames)
        return aligned[resample_index(video.num_frames, self.dataset.fps, self.fps)]

    def labels(self, name: str) -> np.ndarray:
        video = self.dataset.videos[name]
        return video.labels[resample_index(video.num_frames, self.dataset.fps, self.fps)]

    def read(self, name: str, frames: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """(T, D) float32 features of the video at `fps` (or of its `frames` only), into `out` if given."""
        rows = self.rows(name)
        return self.array(name).read(rows if frames is None else rows[frames], out)

    def check(self, progress=sys.stderr) -> list[FeatureReport]:
        """Every array opened, oriented, compared with its labels, scanned for values that are not
        finite in float32 and compared in magnitude with the others; one FeatureError listing every
        problem found, or one report per video."""
        problems, reports, started = [], [], time.monotonic()
        videos = list(self.dataset.videos.values())
        for number, video in enumerate(videos, start=1):
            try:
                found = self.array(video.name)
                finite, rms = scan_values(open_array(found.path))
                if not finite:
                    raise FeatureError(f"{found.path}: contains NaN or infinite values (as float32, which the "
                                       "pipeline computes in)")
            except FeatureError as error:
                problems.append(str(error))
                continue
            reports.append(FeatureReport(video.name, str(found.path), found.layout, found.dim, found.frames,
                                         video.num_frames, alignment_action(found.frames, video.num_frames), rms,
                                         found.note()))
            if progress is not None and (number % 100 == 0 or number == len(videos)):
                print(f"[features {self.dataset.name}] {number}/{len(videos)} checked "
                      f"({time.monotonic() - started:.0f}s elapsed)", file=progress, flush=True)
        problems += magnitude_outliers({r.path: r.rms for r in reports}, f"dataset {self.dataset.name!r}'s arrays")
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise FeatureError(f"dataset {self.dataset.name!r}: {len(problems)} feature arrays cannot be used:\n"
                               f"  {shown}{more}")
        return reports


def write_report(reports: list[FeatureReport], path: str | Path) -> None:
    write_csv([asdict(r) for r in reports], path, fieldnames=list(FeatureReport.__annotations__))
