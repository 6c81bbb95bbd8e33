"""Command lines of the joint frame classifier's report: `python -m pipeline joint-table | joint-figure`
(`joint_classifier.py`)."""

from __future__ import annotations

import argparse

from .cli import _pairs


def joint_table_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm joint-table",
                                     description="None, Joint LSTM and Joint DDLSTM with each dataset's frame "
                                                 "classifier alone and with the pair's joint one (CSV, Markdown, "
                                                 "LaTeX), with paired 95%% intervals of joint - alone.")
    parser.add_argument("--alone-metrics", nargs="+", required=True,
                        help="metrics.csv of the runs on each dataset's own classifier (<D1>+<D2>/split<k>/<run>/)")
    parser.add_argument("--joint-metrics", nargs="+", required=True,
                        help="metrics.csv of the runs on the pair's joint classifier (<D1>+<D2>/split<k>/<run>/)")
    parser.add_argument("--alone-none", nargs="+", required=True, help="none.json under <dataset>/split<k>/")
    parser.add_argument("--joint-none", nargs="+", required=True, help="none.json under <D1>+<D2>/<dataset>/split<k>/")
    parser.add_argument("--pairs", nargs="+", required=True, help="dataset pairs as D1+D2, in table order")
    parser.add_argument("--depth", type=int, required=True, help="depth of the recurrent models")
    parser.add_argument("--feature-datasets", nargs="*", default=[], help="datasets read from precomputed features")
    parser.add_argument("--readings", default="", help="how the runs read the paper (ends the caption)")
    parser.add_argument("--output", required=True, help="the table's path without extension (.csv, .md, .tex)")
    args = parser.parse_args(argv)
    from .joint_classifier import write_comparison

    write_comparison(args.alone_metrics, args.joint_metrics, args.alone_none, args.joint_none, _pairs(args.pairs),
                     args.depth, args.output, set(args.feature_datasets), args.readings)
    return 0


def joint_figure_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm joint-figure",
                                     description="The joint frame classifiers' alphas per layer, as PNG.")
    parser.add_argument("--alphas", nargs="+", required=True,
                        help="alphas.csv of the joint classifiers (<D1>+<D2>/split<k>/<folder>/alphas.csv)")
    parser.add_argument("--output", required=True, help="PNG file to write")
    args = parser.parse_args(argv)
    from .joint_classifier import joint_alphas

    joint_alphas(args.alphas, args.output)
    return 0
