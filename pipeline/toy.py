"""A two-domain toy problem that exercises LSTM, BNLSTM and DDLSTM end to end in about a minute,
with nothing but the model library (`ddlstm-toy`, or `snakemake toy`; the workflow's demo is `make demo`).

Two synthetic "datasets" share
a task grammar (actions follow each other in a cycle) but not their label vocabularies, and each
renders frames in its own style (a domain-specific scale and shift of the features). Two pairs of
actions look identical frame by frame, so only temporal context tells them apart. The models are
trained jointly, as in the paper's Joint protocol: half of every batch from each dataset, one
label vector with a block per dataset, and each frame predicted within its dataset's block.

    python -m pipeline.toy [--iterations 300] [--device auto] [--output results/toy/joint_toy.md]

The numbers it prints come from this toy data, not from the paper's datasets.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .device import select_device
from .models import create_model


@dataclass
class ToyConfig:
    actions: int = 6  # per dataset; actions 1/4 and 2/5 render the same frames
    feature_dim: int = 16
    window: int = 40  # frames per training window (the "history")
    min_segment: int = 3
    max_segment: int = 8
    noise: float = 0.6
    batch: int = 32  # half from each dataset
    hidden: int = 32
    layers: int = 2
    iterations: int = 300
    lr: float = 0.1  # SGD, as in the paper (which uses 0.01 over far longer runs)
    seed: int = 0


def make_domains(cfg: ToyConfig, gen: torch.Generator):
    """Frame appearance of each action and the rendering style of each dataset."""
    base = torch.randn(cfg.actions, cfg.feature_dim, generator=gen)
    base[4], base[5] = base[1], base[2]  # look-alike actions: only the order tells them apart
    styles = [(1.0, 0.0), (3.0, 2.0)]  # (scale, shift) per dataset: the gap DDBN addresses
    return base, styles


def sample_windows(cfg: ToyConfig, base, style, count: int, gen: torch.Generator):
    """`count` windows of frames (count, window, D) and labels (count, window)."""
    scale, shift = style
    labels = torch.empty(count, cfg.window, dtype=torch.long)
    for n in range(count):
        action = int(torch.randint(cfg.actions, (1,), generator=gen))
        t = 0
        while t < cfg.window:
            length = int(torch.randint(cfg.min_segment, cfg.max_segment + 1, (1,), generator=gen))
            labels[n, t: t + length] = action
            t += length
            action = (action + 1) % cfg.actions
    frames = base[labels] + cfg.noise * torch.randn(count, cfg.window, cfg.feature_dim, generator=gen)
    return frames * scale + shift, labels


def train_and_evaluate(model_name: str, cfg: ToyConfig, device: torch.device, log=print):
    """Joint training on both toy datasets; returns (per-dataset test frame accuracy, losses)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    base, styles = make_domains(cfg, gen)
    torch.manual_seed(cfg.seed)
    model = create_model(model_name, cfg.feature_dim, cfg.hidden, cfg.layers,
                         max_timesteps=cfg.window).to(device)
    head = nn.Linear(cfg.hidden, 2 * cfg.actions).to(device)
    params = list(model.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
    half = cfg.batch // 2
    losses = []
    start = time.perf_counter()
    for it in range(cfg.iterations):
        xs, ys = zip(*(sample_windows(cfg, base, styles[d], half, gen) for d in range(2)))
        x = torch.cat(xs).to(device)
        y = torch.cat([ys[0], ys[1] + cfg.actions]).to(device)  # dataset 2 owns the second block
        logits = head(model(x, domain_sizes=[half, half]))
        loss = nn.functional.cross_entropy(logits.reshape(-1, 2 * cfg.actions), y.reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if hasattr(model, "constrain_alphas_"):
            model.constrain_alphas_()
        losses.append(loss.item())
        if log and (it + 1) % max(1, cfg.iterations // 5) == 0:
            log(f"  {model_name:7s} iter {it + 1:4d}/{cfg.iterations} loss {loss:.3f} "
                f"({time.perf_counter() - start:.1f}s)")

    model.eval()
    accuracy = []
    with torch.no_grad():
        for d in range(2):
            x, y = sample_windows(cfg, base, styles[d], 64, gen)
            logits = head(model(x.to(device), domain=d))
            block = logits[..., d * cfg.actions: (d + 1) * cfg.actions]  # its own label block
            accuracy.append(float((block.argmax(-1).cpu() == y).float().mean()))
    return accuracy, losses


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ddlstm-toy", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=ToyConfig.iterations,
                        help="training iterations per model")
    parser.add_argument("--models", nargs="+", default=["lstm", "bnlstm", "ddlstm"],
                        help="registered model names to compare")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda:0', ...")
    parser.add_argument("--seed", type=int, default=ToyConfig.seed)
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the results table (Markdown) to this file")
    args = parser.parse_args(argv)
    cfg = ToyConfig(iterations=args.iterations, seed=args.seed)
    device = select_device(args.device)
    print(f"Joint training on two toy datasets ({cfg.iterations} iterations, device {device})")
    rows = []
    for name in args.models:
        accuracy, _ = train_and_evaluate(name, cfg, device)
        rows.append((name, accuracy))
    table = ["| model | dataset 1 frame acc. | dataset 2 frame acc. |", "|---|---|---|"]
    table += [f"| Joint {name.upper()} | {100 * a1:.1f} | {100 * a2:.1f} |" for name, (a1, a2) in rows]
    print("\n" + "\n".join(table))
    if args.output is not None:
        write_atomically(args.output, "\n".join(table) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
