"""A trained recurrent run as one file, a bundle: everything that turns the run's raw inputs (a video, a
frame store, or a precomputed features array) into labels, independent of the workflow's folders.

A bundle is a `torch.save` of tensors, numbers, strings, lists and dicts only, so it loads with
`torch.load(weights_only=True)` (`load_bundle`; a damaged, foreign or other-version file is an error
naming it):

    format, format_version, project_version, created
    run          {"folder", "config": the run's RecurrentConfig, "datasets": names in the run's order}
    workflow_config   the workflow configuration that made it (JSON text; "" outside the workflow)
    frames       {"fps": the rate everything after decoding runs at}
    recurrent    {"state": the SequenceClassifier's state (population statistics included),
                  "input_size", "num_labels", "num_domains", "layout": {"offsets", "input_offsets",
                  "widths", "logit_columns", "boundary"}}
    datasets     {name: {"index" (its domain), "class_names", "background", "label_fps" (its own rate),
                  "source": "videos" or "features",
                  "frame_classifier": {"kind": "cnn", "state", "backbone", "backbone_args", "input_size",
                                       "mean", "std", "frame_size", "batch_size", "precision"}
                                   or {"kind": "linear", "state", "dim", "feature_layout"},
                  "logits_standardisation": {"mean", "std"} (of the split's training logits),
                  "boundary": {"state", "hidden", "history", "eval_batch"} or None,
                  "inputs": "logits" or "features", "feature_standardisation": {"mean", "std"} or None}}

`export_bundle` reads a finished run's folder and the files its inputs came from (the logits file with
the boundary predictions, the frame classifier, the boundary model) and checks that they belong
together.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..io import save_torch
from ..trainer import CheckpointError, load_checkpoint

FORMAT = "ddlstm-bundle"
FORMAT_VERSION = 1
SUFFIX = ".ddlstm"


class BundleError(ValueError):
    """A bundle that cannot be used as asked; the message names the file."""


def _tensor(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


def _boundary_part(work: Path) -> dict | None:
    """The boundary model that predicts a split's test videos (trained on all its training videos)."""
    path = work / "all" / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"boundary model {path} does not exist (the boundary step writes it)")
    state = load_checkpoint(path, "boundary model")
    from ..training.boundary import BoundaryConfig

    defaults = BoundaryConfig()
    fingerprint = state["fingerprint"]
    return {"state": state["model"], "hidden": int(fingerprint["hidden"]), "history": int(fingerprint["history"]),
            "eval_batch": int(fingerprint.get("eval_batch", defaults.eval_batch))}


def _frame_classifier_part(path: Path, frame_size, batch_size: int, feature_layout: str, extraction: dict) -> dict:
    """The frame classifier in `path` and how extraction ran it (`extraction`: the logits file's
    description of the model, which names its precision where it was not float32)."""
    saved = load_checkpoint(path, "frame classifier")
    if saved.get("description", {}).get("classifier") == "linear":
        state = saved["model"]
        return {"kind": "linear", "state": state, "dim": int(state["mean"].numel()), "feature_layout": feature_layout}
    for key in ("model", "backbone", "backbone_args", "input_size"):
        if key not in saved:
            raise CheckpointError(f"{path}: not a frame classifier of this pipeline (it lacks {key!r})")
    from ..features.finetune import load_classifier

    model, _ = load_classifier(path)
    return {"kind": "cnn", "state": saved["model"], "backbone": saved["backbone"],
            "backbone_args": dict(saved["backbone_args"]), "input_size": int(saved["input_size"]),
            "mean": list(model.pretrained_cfg["mean"]), "std": list(model.pretrained_cfg["std"]),
            "frame_size": frame_size, "batch_size": int(batch_size),
            "precision": str(extraction.get("precision", "fp32"))}


def export_bundle(run: str | Path, inputs: list, frame_classifiers: list, boundary_work: list, specs: list[dict],
                  frames_fps: float, output: str | Path, frame_size=None, extract_batch: int = 64,
                  feature_sources: list | None = None, workflow_config: str = "") -> Path:
    """Write the bundle of the finished run in folder `run` to `output`. Per dataset of the run, in its
    order: its inputs file (logits with the boundary predictions), its frame classifier (`model.pt`
    of fine-tuning or of the linear classifier), the boundary step's work folder, and its spec; with
    the run's inputs "features", `feature_sources` (a FeatureSource or None per dataset)."""
    from ..features.logits import Logits
    from ..training.config import RecurrentConfig
    from ..training.inputs import FeatureInput, Layout
    from ..training.sequences import load_split

    run = Path(run)
    for name in ("config.json", "checkpoint.pt", "metrics.csv"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} does not exist: {run} is not a finished recurrent run")
    saved_config = json.loads((run / "config.json").read_text())
    known = {f.name for f in fields(RecurrentConfig)}
    config = RecurrentConfig(**{k: v for k, v in saved_config.items() if k in known})
    run_datasets = [entry.split(" split ")[0] for entry in saved_config["datasets"]]
    if not len(inputs) == len(frame_classifiers) == len(boundary_work) == len(specs) == len(run_datasets):
        raise ValueError(f"{run}: the run has {len(run_datasets)} datasets ({run_datasets}); give one inputs file, "
                         "frame classifier, boundary folder and spec for each, in that order")
    splits = [load_split(path) for path in inputs]
    descriptions = []
    for path in inputs:
        with Logits(path) as logits:
            descriptions.append(dict(logits.model))
    for split, name, path in zip(splits, run_datasets, inputs):
        if split.dataset != name:
            raise ValueError(f"{path}: holds dataset {split.dataset!r}, where the run's datasets are {run_datasets}")
    features = [None] * len(splits)
    if config.inputs == "features":
        features = [None if source is None else FeatureInput(source, split)
                    for source, split in zip(feature_sources or [None] * len(splits), splits)]
    layout = Layout(splits, config.input_layout, features)
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    if checkpoint["iteration"] < config.total_iterations:
        raise ValueError(f"{run / 'checkpoint.pt'}: the run stopped at iteration {checkpoint['iteration']} of "
                         f"{config.total_iterations}; finish it before exporting")
    datasets = {}
    for index, (split, spec, classifier, work, feature, description) in enumerate(
            zip(splits, specs, frame_classifiers, boundary_work, features, descriptions)):
        source = "features" if spec.get("features") or (spec.get("format") == "mstcn" and not spec.get("videos")) \
            else "videos"
        datasets[split.dataset] = {
            "index": index, "class_names": list(split.class_names), "background": split.background,
            "label_fps": float(spec["fps"]), "source": source,
            "frame_classifier": _frame_classifier_part(Path(classifier), frame_size, extract_batch,
                                                       spec.get("feature_layout", "auto"), description),
            "logits_standardisation": {"mean": _tensor(split.mean), "std": _tensor(split.std)},
            "boundary": _boundary_part(Path(work)) if layout.boundary else None,
            "inputs": "features" if feature is not None else "logits",
            "feature_standardisation": None if feature is None else {"mean": _tensor(feature.mean),
                                                                      "std": _tensor(feature.std)},
        }
    num_domains = {"single": 1, "pretrain_finetune": 2}.get(config.protocol, len(splits))
    bundle = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "project_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run": {"folder": str(run), "config": saved_config, "datasets": run_datasets},
        "workflow_config": workflow_config,
        "frames": {"fps": float(frames_fps)},
        "recurrent": {"state": checkpoint["model"], "input_size": layout.input_size, "num_labels": layout.num_labels,
                      "num_domains": num_domains,
                      "layout": {"offsets": layout.offsets, "input_offsets": layout.input_offsets,
                                 "widths": layout.widths, "logit_columns": layout.logit_columns,
                                 "boundary": layout.boundary}},
        "datasets": datasets,
    }
    save_torch(bundle, output)
    return Path(output)


@dataclass
class Bundle:
    """A loaded bundle (module docstring) and the models it holds, built on demand."""

    path: Path
    content: dict

    @property
    def config(self):
        from ..training.config import RecurrentConfig

        known = {f.name for f in fields(RecurrentConfig)}
        return RecurrentConfig(**{k: v for k, v in self.content["run"]["config"].items() if k in known})

    @property
    def fps(self) -> float:
        return self.content["frames"]["fps"]

    def dataset(self, name: str) -> dict:
        datasets = self.content["datasets"]
        if name not in datasets:
            raise BundleError(f"{self.path}: no dataset {name!r} in this bundle; it holds {sorted(datasets)}")
        return datasets[name]

    def recurrent_model(self, device="cpu"):
        from ..training.classifier import SequenceClassifier

        part, config = self.content["recurrent"], self.config
        model = SequenceClassifier(config.model, part["input_size"], part["num_labels"], config, part["num_domains"])
        model.load_state_dict(part["state"])
        return model.to(device).eval()

    def frame_classifier(self, name: str, device="cpu"):
        part = self.dataset(name)["frame_classifier"]
        classes = len(self.dataset(name)["class_names"])
        if part["kind"] == "linear":
            from ..features.linear import LinearClassifier

            model = LinearClassifier(part["dim"], classes)
        else:
            import timm

            from ..features import bninception  # noqa: F401  (registers "bninception" with timm)

            model = timm.create_model(part["backbone"], num_classes=classes, **part["backbone_args"])
        model.load_state_dict(part["state"])
        return model.to(device).eval()

    def boundary_model(self, name: str, device="cpu"):
        part = self.dataset(name)["boundary"]
        if part is None:
            return None
        from ..training.boundary import BoundaryLSTM

        model = BoundaryLSTM(len(self.dataset(name)["class_names"]), part["hidden"], part["history"])
        model.load_state_dict(part["state"])
        return model.to(device).eval()


def load_bundle(path: str | Path) -> Bundle:
    """A bundle from `path`, checked: a damaged file, another kind of file, or a bundle of another
    format version is a BundleError naming it."""
    path = Path(path)
    try:
        content = load_checkpoint(path, "bundle")
    except CheckpointError as error:
        raise BundleError(str(error)) from None
    if content.get("format") != FORMAT:
        raise BundleError(f"{path}: not a ddlstm bundle (export one with `ddlstm export` or the workflow's "
                          "results/models/ targets)")
    if content.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: a bundle of format {content.get('format_version')} (ddlstm "
                          f"{content.get('project_version', '?')}); this is ddlstm {__version__}, which reads format "
                          f"{FORMAT_VERSION}: export the run again with this version")
    missing = {"run", "frames", "recurrent", "datasets"} - set(content)
    if missing:
        raise BundleError(f"{path}: a damaged bundle (it lacks {sorted(missing)})")
    if not math.isfinite(content["frames"].get("fps", float("nan"))):
        raise BundleError(f"{path}: a damaged bundle (no frame rate)")
    return Bundle(path, content)
