"""Command lines of the reporting stage: `ddlstm tables | figures`."""

from __future__ import annotations

import argparse
import re

import numpy as np

from ..features.logits import Logits
from .figures import figure5, figure6, figure7, groups_alphas
from .tables import write_tables


def _pairs(values):
    pairs = []
    for value in values:
        if value.count("+") != 1:
            raise argparse.ArgumentTypeError(f"a pair is written D1+D2, not {value!r}")
        pairs.append(tuple(value.split("+")))
    return pairs


def _comparison_entries(values):
    """DATASET:D1+D2 -> (dataset, (d1, d2))."""
    entries = []
    for value in values:
        dataset, _, pair = value.partition(":")
        [(d1, d2)] = _pairs([pair])
        if dataset not in (d1, d2):
            raise argparse.ArgumentTypeError(f"{value!r}: {dataset!r} is not in its pair {pair!r}")
        entries.append((dataset, (d1, d2)))
    return entries


def tables_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm tables",
                                     description="Tables 1 and 2 and the segmentation table (CSV, Markdown, LaTeX) "
                                                 "from the runs' metrics.csv and the none.json files.")
    parser.add_argument("--metrics", nargs="+", required=True,
                        help="metrics.csv files under <D1>+<D2>/split<k>/<protocol>-<model>-L<depth>/")
    parser.add_argument("--none", nargs="+", required=True, help="none.json files under <dataset>/split<k>/")
    parser.add_argument("--pairs", nargs="+", required=True, help="dataset pairs as D1+D2, in table order")
    parser.add_argument("--depths", nargs="+", type=int, required=True, help="DDLSTM depths of Table 2")
    parser.add_argument("--table1-depth", type=int, required=True, help="depth of Table 1's recurrent models")
    parser.add_argument("--paper", action="store_true", help="show the paper's numbers beside ours")
    for table in ("table3", "table4"):
        parser.add_argument(f"--{table}", nargs="+", default=[], metavar="DATASET:D1+D2",
                            help=f"{table[:-1].title()} {table[-1]}: a dataset against published results, with the pair "
                                 "whose joint-lstm, joint-ddlstm and lookahead-ddlstm runs score it")
    parser.add_argument("--table5", nargs="+", default=[], metavar="D1+D2",
                        help="Table 5: (large, small) pairs with d1d2-lstm, d2d1-lstm and joint-ddlstm runs")
    parser.add_argument("--table5-split", type=int, default=1, help="the one split of Table 5 (default: 1)")
    parser.add_argument("--feature-datasets", nargs="*", default=[],
                        help="datasets read from precomputed features (the input column of Tables 3 and 4)")
    parser.add_argument("--readings", default="", help="how the runs read the paper (ends the captions)")
    parser.add_argument("--groups", nargs="*", default=[], metavar="D1+D2+D3",
                        help="groups of three or more datasets with joint runs (the groups table)")
    parser.add_argument("--group-splits", nargs="*", type=int, default=None,
                        help="the splits of the groups' runs (default: every split found)")
    parser.add_argument("--comparison", action="store_true",
                        help="the table of paired differences of the joint models with confidence intervals")
    parser.add_argument("--recurrent-inputs", choices=("logits", "features"), default="logits",
                        help="what the recurrent models read (for the captions)")
    parser.add_argument("--output-dir", required=True, help="folder for table1.*, table2.*, segmentation.*, ...")
    args = parser.parse_args(argv)
    write_tables(args.metrics, args.none, _pairs(args.pairs), args.depths, args.table1_depth, args.output_dir,
                 args.paper, _comparison_entries(args.table3), _comparison_entries(args.table4),
                 _pairs(args.table5), args.table5_split, set(args.feature_datasets), args.readings,
                 [tuple(group.split("+")) for group in args.groups], args.group_splits, args.comparison,
                 args.recurrent_inputs)
    return 0


def figures_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ddlstm figures",
                                     description="Figs. 5, 6 and 7 of the paper as PNG files.")
    parser.add_argument("--metrics", nargs="+", required=True, help="as for `tables`")
    parser.add_argument("--none", nargs="+", required=True, help="as for `tables`")
    parser.add_argument("--pairs", nargs="+", required=True, help="dataset pairs as D1+D2")
    parser.add_argument("--table1-depth", type=int, required=True)
    parser.add_argument("--alphas", nargs="+", required=True,
                        help="alphas.csv of the Table-1 DDLSTM run (one split) of each pair, in --pairs order")
    parser.add_argument("--alpha-init-runs", nargs="*", default=[],
                        help="alphas.csv files of runs from other initial values (path holds '-a<value>/')")
    parser.add_argument("--strip-inputs", required=True, help="inputs HDF5 of the dataset shown in Fig. 6")
    parser.add_argument("--strip-finetuned", required=True, help="predictions.npz of the fine-tuned LSTM run")
    parser.add_argument("--strip-ddlstm", required=True, help="predictions.npz of the joint DDLSTM run")
    parser.add_argument("--group-alphas", nargs="*", default=[],
                        help="alphas.csv of each group's DDLSTM run (path under <D1>+<D2>+<D3>.../): groups_alphas.png")
    parser.add_argument("--output-dir", required=True, help="folder for fig5.png, fig6.png, fig7.png")
    args = parser.parse_args(argv)
    pairs = _pairs(args.pairs)
    figure5(args.metrics, args.none, pairs, args.table1_depth, f"{args.output_dir}/fig5.png")
    inits = {}
    for path in args.alpha_init_runs:
        match = re.search(r"-a([0-9.]+)/", path)
        if match is None:
            raise ValueError(f"{path}: no '-a<initial alpha>/' in the path")
        inits[float(match[1])] = path
    figure7({f"{d1}+{d2}": path for (d1, d2), path in zip(pairs, args.alphas)}, inits,
            f"{args.output_dir}/fig7.png")
    with Logits(args.strip_inputs) as source:
        video = source.names("test")[0]
        labels, class_names, dataset = source.labels(video), source.class_names, source.dataset
    finetuned, ddlstm = (np.load(path)[f"{dataset}/{video}"] for path in (args.strip_finetuned, args.strip_ddlstm))
    figure6(labels, finetuned, ddlstm, class_names, f"{dataset} {video}", f"{args.output_dir}/fig6.png")
    if args.group_alphas:
        groups = {}
        for path in args.group_alphas:
            match = re.search(r"([^/]+\+[^/]+\+[^/]+)/split\d+/", path)
            if match is None:
                raise ValueError(f"{path}: not under a group's folder <D1>+<D2>+<D3>.../split<k>/")
            groups[match[1]] = path
        groups_alphas(groups, f"{args.output_dir}/groups_alphas.png")
    return 0
