"""Command line of the pipeline: `python -m pipeline <step> [options]`, one step per call, as the
workflow's rules make them. `python -m pipeline <step> --help` explains a step's options."""

import sys

STEPS = {
    "synthetic": ("pipeline.data.cli:synthetic_main", "write the embedded synthetic kitchen datasets"),
    "synthetic-features": ("pipeline.data.cli:synthetic_features_main",
                           "an MS-TCN folder with features synthesised from real label sequences"),
    "frames": ("pipeline.data.cli:frames_main", "decode a dataset's videos into frame stores aligned with its labels"),
    "finetune": ("pipeline.features.cli:finetune_main", "fine-tune the frame classifier on one split"),
    "extract": ("pipeline.features.cli:extract_main", "write one split's per-frame logits to HDF5"),
    "check-features": ("pipeline.data.cli:check_features_main",
                       "check a dataset's precomputed feature arrays and report them"),
    "linear": ("pipeline.features.cli:linear_main", "fit the linear frame classifier on features; write logits"),
    "none-row": ("pipeline.features.cli:none_row_main", "frame accuracy of the logits alone on the test videos"),
    "boundary": ("pipeline.training.cli:boundary_main", "train the boundary LSTM; add its output to the logits"),
    "train": ("pipeline.training.cli:train_main", "train and evaluate a recurrent model under one protocol"),
    "tables": ("pipeline.reporting.cli:tables_main", "Tables 1 and 2 and the segmentation table"),
    "figures": ("pipeline.reporting.cli:figures_main", "Figs. 5, 6 and 7"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        lines = [f"  {name:<10} {summary}" for name, (_, summary) in STEPS.items()]
        print("usage: python -m pipeline <step> [options]\n\nsteps:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib
    import logging

    # Every step logs the same way: INFO and up to stderr, which the workflow's rules send to their log.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    module, _, function = STEPS[argv[0]][0].partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
