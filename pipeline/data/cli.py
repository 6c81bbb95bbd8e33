"""Command lines of the data stage: `ddlstm synthetic | synthetic-features | frames |
check-features`, each a thin adapter from its options to one function of the package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset and --name: the dataset a step reads (here, and the frame classifier's steps)."""
    parser.add_argument("--dataset", required=True,
                        help="dataset spec: inline JSON, or a JSON/YAML file (with --name to pick one of several)")
    parser.add_argument("--name", help="which dataset of the spec file")


def dataset_from(args):
    """The dataset named by the options of `dataset_arguments`, read."""
    return read_dataset(args.dataset, args.name)


def read_dataset(spec: str, name: str | None = None):
    """The dataset of a spec (inline JSON, or a JSON/YAML file with `name` picking one of several), read."""
    from .readers import load_dataset, read_spec

    return load_dataset(read_spec(spec, name))


def tolerance_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--tolerance-frames", type=int, default=10,
                        help=f"frames {what} may differ from its labels (default: 10)")
    parser.add_argument("--tolerance-fraction", type=float, default=0.02,
                        help="... or this fraction of its label count, whichever is larger (default: 0.02)")


def synthetic_main(argv=None) -> int:
    from .synthetic import DATASETS, Sizes, generate
    from .synthetic import __doc__ as description

    parser = argparse.ArgumentParser(prog="ddlstm synthetic", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="folder to write the datasets into")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same data")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS),
                        help="which synthetic datasets to write (default: all three)")
    parser.add_argument("--participants", type=int, default=Sizes.participants, help="participants per dataset")
    parser.add_argument("--videos-per-participant", type=int, default=Sizes.videos_per_participant,
                        help="recordings per participant")
    parser.add_argument("--frame-size", type=int, default=Sizes.frame_size, help="frame height and width (even)")
    parser.add_argument("--pace", type=float, default=Sizes.pace, help="scale of step lengths (<1: shorter videos)")
    args = parser.parse_args(argv)
    sizes = Sizes(args.participants, args.videos_per_participant, args.frame_size, args.pace)
    specs = generate(args.output, args.seed, sizes, tuple(args.datasets))
    print(json.dumps(specs, indent=2), file=sys.stdout)
    return 0


def synthetic_features_main(argv=None) -> int:
    from .synthetic import features as synthesis

    parser = argparse.ArgumentParser(prog="ddlstm synthetic-features", description=synthesis.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="MS-TCN folder with groundTruth/ and mapping.txt")
    parser.add_argument("--output", required=True, help="MS-TCN folder to write (features/, groundTruth/, ...)")
    parser.add_argument("--name", help="seeds the dataset's class means and distortion and picks its preset model "
                                       "(default: the source's name)")
    parser.add_argument("--participants", type=int, help="participants kept, spread over all (default: all)")
    parser.add_argument("--videos-per-participant", type=int, help="videos kept per participant (default: all)")
    parser.add_argument("--participant-pattern", default=synthesis.DEFAULT_PATTERN,
                        help=f"regex whose first group is a video's participant (default: {synthesis.DEFAULT_PATTERN})")
    parser.add_argument("--preset", default=synthesis.DEFAULT_PRESET, choices=sorted(synthesis.PRESETS),
                        help="feature model: v1 the first (own class means, white noise, affine distortion), v2 the "
                             "harder one calibrated for the convergence study (default: "
                             f"{synthesis.DEFAULT_PRESET}); the options below change it")
    defaults = synthesis.FeatureModel()
    for field in synthesis.model_fields():
        value = getattr(defaults, field)
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(value, bool) else type(value)
        presets = ", ".join(f"{name} {getattr(synthesis.feature_model('', name), field)}" for name in synthesis.PRESETS)
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind,
                            help=f"{synthesis.HELP[field]} (default: the preset's: {presets})")
    args = parser.parse_args(argv)
    changes = {field: getattr(args, field) for field in synthesis.model_fields() if getattr(args, field) is not None}
    model = synthesis.feature_model(args.name or Path(args.source).name, args.preset, **changes)
    videos = synthesis.write_folder(args.source, args.output, args.name, model, args.participants,
                                    args.videos_per_participant, args.participant_pattern)
    print(f"wrote {len(videos)} videos to {args.output}")
    return 0


def _parse_size(text: str | None):
    if text is None:
        return None
    if "x" in text:
        height, width = text.lower().split("x")
        return int(height), int(width)
    return int(text)


def frames_main(argv=None) -> int:
    from .frames import store_dataset

    parser = argparse.ArgumentParser(
        prog="ddlstm frames",
        description="Decode every video of a dataset into frame stores aligned with its labels "
                    "(see the module docstring of pipeline.data.frames for the mismatch policy).")
    dataset_arguments(parser)
    parser.add_argument("--output-dir", required=True, help="folder for the frame stores (<video>.<store>)")
    parser.add_argument("--store", choices=["npy", "h5"], default="npy",
                        help="npy: raw uint8, fastest reads; h5: one JPEG per frame, ~10x smaller")
    parser.add_argument("--fps", type=float, help="resample frames and labels to this rate (default: the labels' rate)")
    parser.add_argument("--size", help="resize: short side (e.g. 128, aspect kept) or HxW (e.g. 64x64); default: native")
    tolerance_arguments(parser, "a video")
    parser.add_argument("--report", help="CSV of decoded vs label counts per video (default: <output-dir>/report.csv)")
    args = parser.parse_args(argv)
    store_dataset(dataset_from(args), args.output_dir, args.store, fps=args.fps, size=_parse_size(args.size),
                  tolerance_frames=args.tolerance_frames, tolerance_fraction=args.tolerance_fraction,
                  report_path=args.report or Path(args.output_dir) / "report.csv")
    return 0


def feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a step that reads a dataset's precomputed features (here and `linear`)."""
    dataset_arguments(parser)
    parser.add_argument("--fps", type=float, help="resample features and labels to this rate (default: the labels' rate)")
    tolerance_arguments(parser, "an array")


def feature_source(args):
    """(dataset, FeatureSource) from the options of `feature_arguments`."""
    from .precomputed import FeatureSource

    dataset = dataset_from(args)
    return dataset, FeatureSource(dataset, args.fps, args.tolerance_frames, args.tolerance_fraction)


def check_features_main(argv=None) -> int:
    from .precomputed import write_report

    parser = argparse.ArgumentParser(prog="ddlstm check-features",
                                     description="Check every precomputed feature array of a dataset (present, 2-D, "
                                                 "one dimension, finite, as long as its labels within tolerance) and "
                                                 "write a CSV report; an error lists every array that cannot be used.")
    feature_arguments(parser)
    parser.add_argument("--report", required=True, help="CSV to write: one row per video")
    args = parser.parse_args(argv)
    _, source = feature_source(args)
    write_report(source.check(), args.report)
    return 0
