"""One device check of the Triton recurrent kernels on a GPU, printed as one table (under 5 minutes).

    python benchmarks/gpu.py                  # on a CUDA machine
    python benchmarks/gpu.py --smoke          # tiny sizes on the CPU, Triton through its interpreter:
                                              # checks that the script itself runs (numbers meaningless)

Rows, by section (each in its own try/except: an error is printed in its row and the rest goes on; a
total time guard, --budget seconds, skips what would start after it):

0. self-check: what implementation="auto" picks on the device after its first-use self-check
   (`pipeline.models.triton_kernel.checks.self_check`; in smoke mode the self-check itself, on the CPU);
1. agreement: the Triton kernels against the fused kernel on the device at the paper's size (B=128,
   64 windows per domain, some padded frames, T=200, H=128, 3 layers, input 64): max |difference| of
   the outputs and of every gradient (input, weights, biases, alphas), per model;
2. training step, ms (median of interleaved repeats, torch.cuda.synchronize around each): nn.LSTM
   (cuDNN); DDLSTM, BNLSTM, LSTM through the Triton kernels eagerly and as a replayed CUDA graph;
   DDLSTM through the fused kernel as a CUDA graph (what runs on CUDA without Triton);
3. evaluation forward, ms: a paper-size batch through DDLSTM (Triton) and nn.LSTM's forward;
4. BN-Inception (timm "bninception", 224 px, batch 64): fine-tuning (forward, backward, SGD with
   momentum) and extraction (inference forward) images/s, bf16 autocast with channels_last and fp32;
5. GPU-hours of config/paper.yaml and config/mstcn.yaml: the recurrent runs the workflow plans
   (`workflow/rules/common.smk` `planned_runs`, plus Figure 7's alpha_init runs), each `iterations`
   steps (twice for pre-train / fine-tune), at the measured graphed Triton step of its model scaled
   linearly by depth / 3 and timesteps / 200 (look-ahead windows are 1.5 histories long); plus, for
   datasets read from videos, the frame classifier's fine-tuning (epochs x frames_per_epoch at the
   measured bf16 rate). Extraction, the boundary LSTMs and evaluation are not counted.
"""

from __future__ import annotations

import os
import sys

if "--smoke" in sys.argv:  # before anything imports Triton: the interpreter is picked as kernels are made
    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse
import copy
import statistics
import time
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recurrent as bench

from pipeline.models import create_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ddlstm", "bnlstm", "lstm")


class Table:
    """Rows printed as they come (a later failure loses nothing), one markdown table."""

    def __init__(self, budget: float):
        self.deadline = time.monotonic() + budget
        self.values: dict[str, float] = {}
        print("| section | what | value | note |\n|---|---|---|---|", flush=True)

    def row(self, section, what, value, note=""):
        print(f"| {section} | {what} | {value} | {note} |", flush=True)

    def run(self, section, what, function):
        """function() -> (value, note); its error, or the time guard, goes into the row instead."""
        if time.monotonic() > self.deadline:
            self.row(section, what, "skipped", "time guard (--budget)")
            return None
        try:
            value, note = function()
        except Exception as error:  # noqa: BLE001  (the table goes on)
            self.row(section, what, "error", f"{type(error).__name__}: {str(error).strip()[:200]}")
            return None
        self.row(section, what, value, note)
        return value


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- 0. the self-check -------------------------------------------------------------------------------------


def auto_choice(device):
    from pipeline.models import layers
    from pipeline.models.triton_kernel import checks

    if device.type != "cuda":  # "auto" is native or fused on the CPU: run the check itself
        problem = checks.self_check(device)
        return ("fused" if problem else "triton"), problem or "self-check passed (Triton interpreter)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = layers.resolve_implementation("auto", device)
    return choice, "; ".join(str(w.message) for w in caught) or "self-check passed"


# -- 1. agreement ---------------------------------------------------------------------------------------


def agreement(kind, size, device):
    batch, steps, hidden, layers, inputs, _ = size
    torch.manual_seed(0)
    fused = create_model(kind, inputs, hidden, layers, max_timesteps=steps, implementation="fused")
    fused.to(device).train()
    ours = copy.deepcopy(fused)
    ours.implementation = "triton"
    x = torch.randn(batch, steps, inputs, device=device)
    mask = torch.ones(batch, steps, dtype=torch.bool, device=device)
    mask[::5, : steps // 4] = False  # short windows padded at the start, as the workflow's are
    weight = torch.randn(batch, steps, hidden, device=device)
    grads = []
    for model in (fused, ours):
        x_in = x.clone().requires_grad_()
        out = model(x_in, domain_sizes=[batch // 2, batch - batch // 2], mask=mask)
        (out * weight).sum().backward()
        grads.append((out.detach(), x_in.grad, {n: p.grad for n, p in model.named_parameters()}))
    synchronize(device)
    (out_f, dx_f, params_f), (out_t, dx_t, params_t) = grads
    worst, name = float((dx_t - dx_f).abs().max()), "input"
    for key, grad in params_f.items():
        difference = float((params_t[key] - grad).abs().max())
        if difference > worst:
            worst, name = difference, key
    scale = max(float(g.abs().max()) for g in params_f.values())
    return (f"{float((out_t - out_f).abs().max()):.2e} / {worst:.2e}",
            f"output / worst gradient ({name}); largest gradient {scale:.2e}")


# -- 2, 3. recurrent steps and evaluation -----------------------------------------------------------------


def recurrent_timings(table, size, device, repeats, warmup):
    variants = ["nn.LSTM", *[f"{m}/triton" for m in MODELS], *[f"{m}/triton-graphed" for m in MODELS],
                "ddlstm/graphed"]
    steps = {}
    for variant in variants:
        try:
            steps[variant] = bench.make_step(variant, size, device, project_alphas=variant != "nn.LSTM")
        except Exception as error:  # noqa: BLE001  (only a failure gets a row here)
            table.row("train step", variant, "error", f"{type(error).__name__}: {str(error).strip()[:200]}")
    if time.monotonic() > table.deadline:
        table.row("train step", "all", "skipped", "time guard (--budget)")
        return {}
    # warmup 4 on CUDA: a graphed variant runs 3 eager steps, then is captured; every later call replays
    times = bench.timed(steps, repeats, warmup=warmup)
    result = {}
    base = statistics.median(times["nn.LSTM"]) if "nn.LSTM" in times else None
    for variant, samples in times.items():
        med = statistics.median(samples)
        result[variant] = med
        note = f"min {min(samples) * 1e3:.2f} ms, {len(samples)} steps"
        if base:
            note += f", {med / base:.2f}x nn.LSTM"
        table.row("train step", variant, f"{med * 1e3:.2f} ms", note)
    return result


def evaluation(size, device, repeats, warmup):
    runs = {v: bench.make_evaluation(v, size, device) for v in ("nn.LSTM", "ddlstm/triton")}
    times = bench.timed(runs, repeats, warmup=warmup)
    ours, base = statistics.median(times["ddlstm/triton"]), statistics.median(times["nn.LSTM"])
    return f"{ours * 1e3:.2f} ms", f"nn.LSTM {base * 1e3:.2f} ms ({ours / base:.2f}x), batch {size[0]}"


# -- 4. BN-Inception ---------------------------------------------------------------------------------------


def bninception(device, batch, pixels, width, steps, bf16, training):
    from pipeline.features.backbone import create_backbone

    kwargs = {} if width == 1.0 else {"width_multiplier": width}
    model = create_backbone("bninception", num_classes=48, **kwargs).to(device)
    x = torch.randn(batch, 3, pixels, pixels, device=device)
    y = torch.randint(0, 48, (batch,), device=device)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        if training:
            with autocast:
                loss = nn.functional.cross_entropy(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        else:
            with torch.inference_mode(), autocast:
                model(x)

    model.train(training)
    for _ in range(2):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    rate = batch * steps / (time.perf_counter() - start)
    return rate


# -- 5. GPU-hours ------------------------------------------------------------------------------------------


def planned_recurrent_runs(config: dict) -> list[tuple[str, str, int, int, int]]:
    """(protocol, model, depth, timesteps, steps) of every recurrent run the workflow plans for a config,
    as `workflow/rules/common.smk` (`planned_runs`, `group_runs`, `figure7_runs`, `run_options`) does:
    every run once per seed (`seeds`), group runs (`groups`) costed like pair runs."""
    rec, tables = config["recurrent"], config.get("tables", {})
    pairs, splits, table1 = [tuple(p) for p in config["pairs"]], config["splits"], rec["table1_depth"]
    table1_methods = [("joint", "lstm"), ("joint", "bnlstm"), ("d1d2", "lstm"), ("d2d1", "lstm"),
                      ("joint", "ddlstm")]
    comparison = [("joint", "lstm"), ("joint", "ddlstm"), ("lookahead", "ddlstm")]
    runs = set()
    for pair in pairs:
        for split in splits:
            runs |= {(pair, split, protocol, model, table1) for protocol, model in table1_methods}
            runs |= {(pair, split, "joint", "ddlstm", depth) for depth in rec["depths"]}
    for name in ("table3", "table4"):
        for entry in tables.get(name, []):
            first, second = entry["dataset"], entry["partner"]
            pair = (second, first) if (second, first) in pairs else (first, second)
            runs |= {(pair, split, protocol, model, table1)
                     for split in splits for protocol, model in comparison}
    if "table5" in tables:
        runs |= {(tuple(pair), tables["table5"]["split"], protocol, model, table1)
                 for pair in tables["table5"]["pairs"]
                 for protocol, model in (("d1d2", "lstm"), ("d2d1", "lstm"), ("joint", "ddlstm"))}
    runs = sorted(runs, key=str)
    for group in config.get("groups", []):
        runs += [(tuple(group), split, "joint", model, table1)
                 for split in config.get("group_splits") or splits for model in ("lstm", "bnlstm", "ddlstm")]
    runs *= len(config.get("seeds") or [rec.get("seed", 0)])
    planned = []
    for _, _, protocol, model, depth in runs:
        history = rec.get("history_by_depth", {}).get(str(depth), rec["history"])
        lookahead = protocol == "lookahead" or rec.get("lookahead", False)
        timesteps = history + (history // 2 if lookahead else 0)
        planned.append((protocol, model, depth, timesteps,
                        rec["iterations"] * (2 if protocol in ("d1d2", "d2d1") else 1)))
    figure7 = config.get("figure7")
    if figure7:
        history = rec.get("history_by_depth", {}).get(str(table1), rec["history"])
        planned += [("joint", "ddlstm", table1, history, rec["iterations"]) for _ in figure7["alpha_inits"]]
    return planned


def gpu_hours(config_path: Path, step_seconds: dict, size, finetune_rate: float | None):
    config = yaml.safe_load(config_path.read_text())
    _, base_steps, _, base_layers, _, _ = size
    runs = planned_recurrent_runs(config)
    seconds = sum(n * step_seconds.get(model, step_seconds["ddlstm"]) * depth / base_layers * t / base_steps
                  for _, model, depth, t, n in runs)
    note = f"{len(runs)} recurrent runs, {sum(r[4] for r in runs):,} steps: {seconds / 3600:.1f} h"
    videos = [name for name, spec in config["datasets"].items() if "videos" in spec]
    if videos and finetune_rate:
        features = config["features"]
        frames = len(videos) * len(config["splits"]) * features["epochs"] * features["frames_per_epoch"]
        seconds += frames / finetune_rate
        note += (f"; frame classifier fine-tuning ({len(videos)} datasets x {len(config['splits'])} splits): "
                 f"{frames / finetune_rate / 3600:.1f} h")
    return f"{seconds / 3600:.1f} GPU-hours", note


# -- main ---------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the script runs")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds after which no section starts")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    args = parser.parse_args(argv)
    if args.smoke:
        torch.set_num_threads(1)
        device = torch.device("cpu")
        size = (8, 3, 16, 2, 6, 5)  # batch, timesteps, hidden, layers, inputs, classes
        cnn = {"batch": 2, "pixels": 64, "width": 0.25, "steps": 1}
        repeats, warmup = 1, 0
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run with --smoke to check the script on the CPU")
        device = torch.device("cuda")
        size = bench.SIZES["paper"]
        cnn = {"batch": 64, "pixels": 224, "width": 1.0, "steps": 10}
        repeats, warmup = args.repeats, 4
    start = time.monotonic()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: numbers meaningless)"
    print(f"benchmarks/gpu.py on {name}, torch {torch.__version__}, "
          f"size (B, T, H, layers, input, classes) = {size}")
    table = Table(args.budget)
    table.run("self-check", "implementation='auto' picks", lambda: auto_choice(device))
    for kind in MODELS:
        table.run("agreement", f"{kind}: triton vs fused, max abs difference",
                  lambda kind=kind: agreement(kind, size, device))
    step_times = recurrent_timings(table, size, device, repeats, warmup)
    table.run("evaluation", "ddlstm/triton forward", lambda: evaluation(size, device, repeats, warmup))
    rates = {}
    for bf16 in (True, False):
        for training in (True, False):
            kind = "fine-tuning" if training else "extraction"
            label = f"{kind}, bf16 + channels_last" if bf16 else f"{kind}, fp32"

            def measure(bf16=bf16, training=training, label=label):
                rates[label] = bninception(device, bf16=bf16, training=training, **cnn)
                return f"{rates[label]:.1f} images/s", f"{cnn['pixels']} px, batch {cnn['batch']}"

            table.run("BN-Inception", label, measure)
    graphed = {m: step_times[f"{m}/triton-graphed"] for m in MODELS if f"{m}/triton-graphed" in step_times}
    for config in ("paper.yaml", "mstcn.yaml"):
        table.run("GPU-hours", f"config/{config}", lambda config=config: (
            gpu_hours(ROOT / "config" / config, graphed, size, rates.get("fine-tuning, bf16 + channels_last"))
            if "ddlstm" in graphed else ("-", "no measured graphed DDLSTM step")))
    print(f"\n({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
