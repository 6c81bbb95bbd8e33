"""Command line of the pipeline: `python -m pipeline <step> [options]` (or `ddlstm <step>`), one step per
call, as the workflow's rules make them. `python -m pipeline <step> --help` explains a step's options.

A step that fails prints one line, `error: <file>: <what is wrong>`, and exits with status 1 (2 for
bad options, as argparse does); the Python traceback only with `--debug` (anywhere on the command
line) or `DDLSTM_DEBUG=1`. The workflow's rules send this to their log, so the log ends with the line.
"""

import os
import sys

STEPS = {
    "init": ("pipeline.deploy:init_main", "write a working directory for one experiment (a preset or your config)"),
    "synthetic": ("pipeline.data.cli:synthetic_main", "write the embedded synthetic kitchen datasets"),
    "synthetic-features": ("pipeline.data.cli:synthetic_features_main",
                           "an MS-TCN folder with features synthesised from real label sequences"),
    "frames": ("pipeline.data.cli:frames_main", "decode a dataset's videos into frame stores aligned with its labels"),
    "finetune": ("pipeline.features.cli:finetune_main", "fine-tune the frame classifier on one split"),
    "extract": ("pipeline.features.cli:extract_main", "write one split's per-frame logits to HDF5"),
    "check-features": ("pipeline.data.cli:check_features_main",
                       "check a dataset's precomputed feature arrays and report them"),
    "linear": ("pipeline.features.cli:linear_main", "fit the linear frame classifier on features; write logits"),
    "finetune-joint": ("pipeline.features.joint_cli:finetune_joint_main",
                       "fine-tune one dual-domain frame classifier on a pair of datasets (videos)"),
    "linear-joint": ("pipeline.features.joint_cli:linear_joint_main",
                     "fit one dual-domain linear classifier on a pair of datasets (features); write logits"),
    "none-row": ("pipeline.features.cli:none_row_main", "frame accuracy of the logits alone on the test videos"),
    "boundary": ("pipeline.training.cli:boundary_main", "train the boundary LSTM; add its output to the logits"),
    "train": ("pipeline.training.cli:train_main", "train and evaluate a recurrent model under one protocol"),
    "tables": ("pipeline.reporting.cli:tables_main",
               "Tables 1-5 (those configured) and the segmentation table"),
    "figures": ("pipeline.reporting.cli:figures_main", "Figs. 5, 6 and 7"),
    "adaptive-share": ("pipeline.reporting.makeup:main", "the table and figure of fixed against adaptive batch makeup"),
    "joint-table": ("pipeline.reporting.joint_cli:joint_table_main",
                    "the frame classifier alone against the joint one: None, Joint LSTM, Joint DDLSTM"),
    "joint-figure": ("pipeline.reporting.joint_cli:joint_figure_main", "the joint frame classifiers' alphas per layer"),
    "export": ("pipeline.inference.cli:export_main", "write a finished run as one bundle file for predict and stream"),
    "predict": ("pipeline.inference.cli:predict_main", "label new recordings with a bundle, online"),
    "stream": ("pipeline.inference.cli:stream_main", "label frames one at a time as they are read"),
}


def usage() -> str:
    width = max(len(name) for name in STEPS)
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in STEPS.items()]
    return ("usage: ddlstm <step> [options]   (or python -m pipeline <step>; --debug: a failure's traceback too;"
            " --version)\n\nsteps:\n"
            + "\n".join(lines))


def error_line(error: BaseException) -> str:
    """One line for the user: the message (which names the file where the pipeline raised it), the file
    of an OS error where the message lacks it, and the kind of error where the message is bare."""
    message = " ".join(str(error).split()) if str(error).strip() else ""
    if isinstance(error, OSError) and error.filename and error.strerror:  # "[Errno 2] ...: 'x'" made plain
        message = f"{error.filename}: {error.strerror}"
    if isinstance(error, KeyError) or not message:
        message = f"{type(error).__name__}: {message or 'no message'}"
    return f"error: {message}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("DDLSTM_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    if argv[:1] == ["--version"]:
        from .deploy import version

        print(f"ddlstm {version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        print(usage())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown step {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from . import warmstart

    if warmstart.enabled() and argv[0] != "init":
        status = warmstart.run(argv + (["--debug"] if debug else []))
        if status is not None:
            return status
    import importlib
    import logging

    # Every step logs the same way: INFO and up to stderr, which the workflow's rules send to their log.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    module, _, function = STEPS[argv[0]][0].partition(":")
    try:
        return getattr(importlib.import_module(module), function or "main")(argv[1:])
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the one place every failure becomes one line
        if debug:
            raise
        print(error_line(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
