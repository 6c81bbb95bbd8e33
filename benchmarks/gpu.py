"""The device check of the Triton recurrent kernels: one run of under 5 minutes that says whether they are
right and how fast they are against cuDNN, printed as tables with a verdict per row.

    python benchmarks/gpu.py                                # on a CUDA machine (paper size)
    TRITON_INTERPRET=1 python benchmarks/gpu.py --smoke     # tiny sizes on the CPU, Triton interpreted:
                                                            # every section end to end (numbers meaningless)

Sections, in order, each with its share of --budget seconds (a section past its share stops between
steps and says so in its rows) and under a watchdog: a section that overruns its share by more than
--grace seconds (a hung kernel) ends the process, after one line naming it, with what was printed.

1. preflight: Triton, a C compiler with Python's headers (Triton builds a launcher with them on first
   use), ptxas, the device; the self-check implementation="auto" runs before taking the kernels, at
   the paper's shape class. A missing piece is named at once and the Triton sections are skipped.
2. correctness, against the fused kernel in float64 on the device at the paper's size (B=128 in two
   domains of 64, T=200, H=128, 3 layers, input 64), padded and unpadded: DDLSTM through every Triton
   variant (persistent and step kernels; ieee, tf32, tf32x3 products), BNLSTM and LSTM through the
   default (persistent, tf32x3), and the fused kernel in float32 as the baseline. Relative errors
   (max |error| / max |float64|) of the output, the worst gradient (input, every parameter), the worst
   running statistic, the evaluation output; PASS where every result is within the precision's tolerance
   (`selfcheck.TOLERANCE`) or within 10x the fused kernel's own float32 error on that result. Then the
   graph replay: 5 training steps (forward, loss, backward, SGD, alpha projection) of DDLSTM eagerly and
   through `GraphedStep` (3 eager steps, captured, replayed) from the same start: PASS where parameters,
   buffers and losses agree to 1e-5 relative; and the grid barriers: PASS where none gave up waiting.
3. training step, ms (median of interleaved repeats, synchronised): nn.LSTM through cuDNN with TF32 off
   (IEEE) and on (TF32: `torch.backends.cudnn.allow_tf32` and `torch.backends.cuda.matmul.allow_tf32`);
   DDLSTM through every Triton variant, eagerly and as a replayed CUDA graph; BNLSTM and LSTM through the
   default variant, graphed; DDLSTM through the fused kernel, graphed. The ratio is to cuDNN at matching
   precision: ieee and tf32x3 rows against cuDNN IEEE, tf32 rows against cuDNN TF32 (every other product
   of a row, cuBLAS's, at that row's precision too). The verdict is the variant's correctness verdict.
4. evaluation forward, ms: a paper-size batch through DDLSTM (default variant) against nn.LSTM's forward.
5. BN-Inception (timm "bninception", 224 px, batch 64): fine-tuning and extraction images/s, bf16 autocast
   with channels_last.
6. GPU-hours of config/paper.yaml and config/mstcn.yaml: the recurrent runs the workflow plans
   (`workflow/rules/common.smk` `planned_runs`, plus Figure 7's alpha_init runs), each `iterations`
   steps (twice for pre-train / fine-tune), at the measured graphed step of its model through the default
   Triton variant, scaled linearly by depth / 3 and timesteps / 200 (look-ahead windows are 1.5 histories
   long); plus, for datasets read from videos, the frame classifier's fine-tuning (epochs x
   frames_per_epoch at the measured bf16 rate). Extraction, the boundary LSTMs and evaluation are not counted.
"""

from __future__ import annotations

import os
import sys

if "--smoke" in sys.argv:  # before anything imports Triton: the interpreter is picked as kernels are made
    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse
import contextlib
import copy
import statistics
import threading
import time
from pathlib import Path

import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recurrent as bench

from pipeline.models import create_model
from pipeline.training.graphs import GraphedStep

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ddlstm", "bnlstm", "lstm")
KERNELS = ("persistent", "step")
PRECISIONS = ("tf32x3", "tf32", "ieee")  # the first is the default (`launcher.PRECISIONS`)
DEFAULT = ("persistent", "tf32x3")
# each section's share of --budget
SHARES = {"preflight": 0.08, "correctness": 0.35, "training step": 0.35, "evaluation": 0.05,
          "BN-Inception": 0.12, "GPU-hours": 0.05}


class OutOfTime(Exception):
    """A section's share of the budget is spent."""


class Section:
    """A section's wall-clock guard: `check()` between steps raises OutOfTime past its share; a watchdog
    ends the process if the section overruns by `grace` seconds (a call that never returns)."""

    def __init__(self, name: str, seconds: float, grace: float):
        self.name, self.seconds, self.grace = name, seconds, grace
        self.deadline = time.monotonic() + seconds
        self.timer = threading.Timer(seconds + grace, self._abort)
        self.timer.daemon = True

    def _abort(self):
        limit = self.seconds + self.grace
        print(f"\n(watchdog: the {self.name} section ran past {limit:.0f} s; stopping here)", flush=True)
        os._exit(3)

    def __enter__(self):
        print(f"\n## {self.name} (wall-clock guard {self.seconds:.0f} s)\n", flush=True)
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        return exc[0] is OutOfTime  # an exhausted share ends the section, the run goes on

    def check(self):
        if time.monotonic() > self.deadline:
            print(f"| {self.name}: time guard, {self.seconds:.0f} s spent: the rest of the section skipped |",
                  flush=True)
            raise OutOfTime


def table(*columns):
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns), flush=True)


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def precision_of(precision: str | None, kernel: str | None = None):
    """The Triton variant (None: left as it is) and cuBLAS / cuDNN's TF32 to match: on for tf32 only."""
    from pipeline.models.triton_kernel import checks

    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with checks.variant(precision, kernel):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


# -- 1. preflight ---------------------------------------------------------------------------------------


def preflight(section, device, size) -> bool:
    """True where the Triton sections can run."""
    from pipeline.models.triton_kernel import selfcheck

    table("what", "found", "verdict")
    ready = True
    for what, found, problem in selfcheck.preflight(device):
        row(what, found, "PASS" if problem is None else f"FAIL: {problem}")
        ready = ready and problem is None
    if not ready:
        return False
    section.check()
    batch, _, hidden, _, _, _ = size
    start = time.monotonic()
    with precision_of(None):
        try:
            problem = selfcheck.self_check(device, "ddbn", rows=batch, hidden=hidden, training=True)
        except Exception as error:  # noqa: BLE001  (the verdict says it)
            problem = one_line(error)
    row("the self-check 'auto' runs (DDLSTM layer, "
        f"{batch} rows, {hidden} units, {os.environ.get('DDLSTM_TRITON_PRECISION', 'tf32x3')})",
        f"{time.monotonic() - start:.1f} s, compiles included",
        "PASS" if problem is None else f"FAIL: {problem}")
    return True


# -- 2. correctness ----------------------------------------------------------------------------------------


def summary(errors: dict) -> tuple[str, str, str, str]:
    gradients = {k: v for k, v in errors.items() if k.endswith("gradient")}
    running = {k: v for k, v in errors.items() if "running" in k}
    evaluation = max(v for k, v in errors.items() if k.startswith("evaluation"))
    name = max(gradients, key=gradients.get)
    return (f"{errors['output']:.1e}", f"{gradients[name]:.1e} ({name.removesuffix(' gradient')})",
            f"{max(running.values(), default=0.0):.1e}", f"{evaluation:.1e}")


def correctness(section, device, size) -> dict:
    """{(model, kernel, precision): "PASS" / "FAIL"}, padded and unpadded together."""
    from pipeline.models.triton_kernel import selfcheck

    batch, steps, hidden, layers, inputs, _ = size
    variants = [("ddlstm", kernel, precision) for kernel in KERNELS for precision in PRECISIONS]
    variants += [(model, *DEFAULT) for model in ("bnlstm", "lstm")]
    table("model", "float32 kernel", "precision", "padded", "output", "worst gradient",
          "worst running statistic", "evaluation", "tolerance", "verdict")
    baselines, verdicts = {}, {}
    for model in ("ddlstm", "bnlstm", "lstm"):
        for masked in (True, False):
            section.check()
            with precision_of("ieee"):
                baselines[model, masked] = selfcheck.compare(model, batch, steps, hidden, inputs, layers,
                                                             device, masked, implementation="fused")
            if model == "ddlstm":
                row(model, "fused (baseline)", "ieee", "yes" if masked else "no",
                    *summary(baselines[model, masked]), "-", "-")
    for model, kernel, precision in variants:
        for masked in (True, False):
            section.check()
            tolerance = selfcheck.TOLERANCE[precision]
            try:
                with precision_of(precision, kernel):
                    errors = selfcheck.compare(model, batch, steps, hidden, inputs, layers, device, masked)
                base = baselines[model, masked]
                failed = [k for k, v in errors.items() if not v <= max(tolerance, 10 * base.get(k, 0.0))]
                verdict = "PASS" if not failed else f"FAIL ({', '.join(failed[:3])})"
                cells = summary(errors)
            except Exception as error:  # noqa: BLE001  (the row says it)
                verdict, cells = f"FAIL: {one_line(error)}", ("-",) * 4
            verdicts[model, kernel, precision] = verdicts.get((model, kernel, precision), "PASS") \
                if verdict == "PASS" else "FAIL"
            row(model, kernel, precision, "yes" if masked else "no", *cells, f"{tolerance:g} or 10x fused",
                verdict)
    return verdicts


def graph_replay(section, device, size) -> dict:
    """{(kernel, precision): "PASS" / "FAIL" / "n/a"}: 5 DDLSTM training steps eagerly and replayed."""
    table("model", "kernel", "precision",
          "after 5 steps: parameters / buffers / losses, max relative difference", "verdict")
    verdicts = {}
    for kernel in KERNELS:
        for precision in PRECISIONS:
            section.check()
            if device.type != "cuda":
                row("ddlstm", kernel, precision, "no CUDA graphs off CUDA", "n/a")
                verdicts[kernel, precision] = "n/a"
                continue
            try:
                with precision_of(precision, kernel):
                    difference = replay_difference(device, size)
                verdict = "PASS" if max(difference) <= 1e-5 else "FAIL"
                cells = " / ".join(f"{d:.1e}" for d in difference)
            except Exception as error:  # noqa: BLE001  (the row says it)
                verdict, cells = "FAIL", one_line(error)
            verdicts[kernel, precision] = verdict
            row("ddlstm", kernel, precision, cells, verdict)
    return verdicts


def replay_difference(device, size, iterations: int = 5) -> tuple[float, float, float]:
    batch, steps, hidden, layers, inputs, classes = size
    torch.manual_seed(0)
    body = create_model("ddlstm", inputs, hidden, layers, max_timesteps=steps, implementation="triton")
    bodies = [body.to(device)]
    heads = [nn.Linear(hidden, classes).to(device)]
    bodies.append(copy.deepcopy(bodies[0]))
    heads.append(copy.deepcopy(heads[0]))
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, steps, inputs, generator=gen).to(device),
                torch.randint(0, classes, (batch, steps), generator=gen).to(device))
               for _ in range(iterations)]
    mask = torch.ones(batch, steps, dtype=torch.bool, device=device)
    mask[::5, : steps // 4] = False
    losses = []
    for body, head, graphed in ((bodies[0], heads[0], False), (bodies[1], heads[1], True)):
        params = list(body.parameters()) + list(head.parameters())

        def train_step(x, mask, y, sizes, body=body, head=head, params=params):
            out = body(x, domain_sizes=sizes, mask=mask)
            loss = nn.functional.cross_entropy(head(out).reshape(-1, classes), y.reshape(-1))
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-0.01)
            body.constrain_alphas_()
            return loss.detach()

        runner = GraphedStep(train_step, enabled=graphed)
        losses.append(torch.stack([runner(x, mask, y, [batch // 2, batch - batch // 2]) for x, y in batches]))
    synchronize(device)

    def relative(a, b):
        return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)

    parameters = max(relative(p, q) for p, q in zip(bodies[1].parameters(), bodies[0].parameters()))
    buffers = max(relative(p, q) for p, q in zip(bodies[1].buffers(), bodies[0].buffers()))
    return parameters, buffers, relative(losses[1], losses[0])


def barriers(device) -> str:
    from pipeline.models.triton_kernel import launcher

    failures = launcher.barrier_failures(device)
    table("grid barriers that gave up waiting (all persistent launches of this run)", "verdict")
    row(failures, "PASS" if failures == 0 else "FAIL: a grid was not resident at once")
    return "PASS" if failures == 0 else "FAIL"


# -- 3, 4. training step and evaluation ---------------------------------------------------------------------


def with_precision(step, precision, kernel=None):
    def run():
        with precision_of(precision, kernel):
            step()
    return run


def training_steps(section, device, size, repeats, warmup, verdicts, triton_ready) -> dict:
    """{variant: median seconds}; prints one row per variant."""
    variants = {"nn.LSTM, cuDNN IEEE": ("nn.LSTM", "ieee", None),
                "nn.LSTM, cuDNN TF32": ("nn.LSTM", "tf32", None)}
    if triton_ready:
        for kernel in KERNELS:
            for precision in PRECISIONS:
                for graphed in (False, True):
                    name = f"ddlstm, triton {kernel}, {precision}{', graphed' if graphed else ''}"
                    variants[name] = (f"ddlstm/triton{'-graphed' if graphed else ''}", precision, kernel)
        for model in ("bnlstm", "lstm"):
            variants[f"{model}, triton {DEFAULT[0]}, {DEFAULT[1]}, graphed"] = (f"{model}/triton-graphed",
                                                                                 DEFAULT[1], DEFAULT[0])
    variants["ddlstm, fused, graphed"] = ("ddlstm/graphed", "ieee", None)
    runs = {}
    for name, (variant, precision, kernel) in variants.items():
        section.check()
        try:
            with precision_of(precision, kernel):
                step = bench.make_step(variant, size, device, project_alphas=variant != "nn.LSTM")
                runs[name] = with_precision(step, precision,
                                            kernel)
        except Exception as error:  # noqa: BLE001  (only a failure gets a row here)
            row(name, "error", "-", "-", one_line(error))
    times = {name: [] for name in runs}
    table("model, implementation, precision, graphs", "ms per step (median)",
          "vs cuDNN at matching precision", "correctness", "note")
    try:
        for _ in range(warmup):  # on CUDA a graphed variant runs 3 eager steps, then is captured
            for run in runs.values():
                section.check()
                run()
        for _ in range(repeats):
            for name, run in runs.items():
                section.check()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    except OutOfTime:
        pass
    medians = {name: statistics.median(t) for name, t in times.items() if t}
    for name, median in medians.items():
        precision = variants[name][1]
        base = medians.get("nn.LSTM, cuDNN TF32" if precision == "tf32" else "nn.LSTM, cuDNN IEEE")
        verdict = "-"
        if "triton" in name:
            model, kernel = name.split(",")[0], variants[name][2]
            verdict = verdicts.get((model, kernel, precision), "not checked")
            replay = verdicts.get(("graph", kernel, precision), "n/a")
            if name.endswith("graphed") and replay not in ("PASS", "n/a"):
                verdict = "FAIL (graph replay)"
        row(name, f"{median * 1e3:.2f}", f"{median / base:.2f}x" if base else "-", verdict,
            f"{len(times[name])} steps, min {min(times[name]) * 1e3:.2f} ms")
    return {variants[name][0]: median for name, median in medians.items()
            if variants[name][1:] == (DEFAULT[1], DEFAULT[0]) or name == "ddlstm, fused, graphed"}


def evaluation(section, device, size, repeats, warmup):
    table("forward in evaluation mode", "ms (median)", "vs nn.LSTM's forward")
    with precision_of(DEFAULT[1], DEFAULT[0]):
        runs = {v: with_precision(bench.make_evaluation(v, size, device), DEFAULT[1], DEFAULT[0])
                for v in ("nn.LSTM", "ddlstm/triton")}
    for _ in range(warmup):
        for run in runs.values():
            run()
    times = {v: [] for v in runs}
    for _ in range(repeats):
        for v, run in runs.items():
            section.check()
            start = time.perf_counter()
            run()
            times[v].append(time.perf_counter() - start)
    ours, base = statistics.median(times["ddlstm/triton"]), statistics.median(times["nn.LSTM"])
    row(f"ddlstm, triton {DEFAULT[0]}, {DEFAULT[1]}, batch {size[0]}", f"{ours * 1e3:.2f}",
        f"{ours / base:.2f}x")
    row("nn.LSTM (cuDNN)", f"{base * 1e3:.2f}", "1.00x")


# -- 5. BN-Inception ---------------------------------------------------------------------------------------


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
    return batch * steps / (time.perf_counter() - start)


# -- 6. GPU-hours ------------------------------------------------------------------------------------------


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
    """(runs, steps, GPU-hours, note) of a config from the measured steps {model: seconds}."""
    config = yaml.safe_load(config_path.read_text())
    _, base_steps, _, base_layers, _, _ = size
    runs = planned_recurrent_runs(config)
    seconds = sum(n * step_seconds.get(model, step_seconds["ddlstm"]) * depth / base_layers * t / base_steps
                  for _, model, depth, t, n in runs)
    note = f"recurrent: {seconds / 3600:.1f} h"
    videos = [name for name, spec in config["datasets"].items() if "videos" in spec]
    if videos and finetune_rate:
        features = config["features"]
        frames = len(videos) * len(config["splits"]) * features["epochs"] * features["frames_per_epoch"]
        seconds += frames / finetune_rate
        note += (f"; frame classifier fine-tuning ({len(videos)} datasets x {len(config['splits'])} splits): "
                 f"{frames / finetune_rate / 3600:.1f} h")
    return len(runs), sum(r[4] for r in runs), seconds / 3600, note


# -- main ---------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU under the Triton interpreter")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run, shared by sections (280; 900 with --smoke)")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds a section may overrun its share before the watchdog ends the run")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 900.0 if args.smoke else 280.0
    if args.smoke:
        torch.set_num_threads(1)
        device = torch.device("cpu")
        size = (8, 3, 16, 2, 6, 5)  # batch, timesteps, hidden, layers, inputs, classes
        cnn = {"batch": 2, "pixels": 64, "width": 0.25, "steps": 1}
        repeats, warmup = 1, 0
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: --smoke (TRITON_INTERPRET=1) checks the script on the CPU")
        device = torch.device("cuda")
        size = bench.SIZES["paper"]
        cnn = {"batch": 64, "pixels": 224, "width": 1.0, "steps": 10}
        repeats, warmup = args.repeats, 4
    start = time.monotonic()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: numbers meaningless)"
    print(f"benchmarks/gpu.py on {name}, torch {torch.__version__}, size (B, T, H, layers, input, classes) = "
          f"{size}, budget {args.budget:.0f} s")

    def section(title):
        return Section(title, SHARES[title] * args.budget, args.grace)

    ready, verdicts, steps, rates = False, {}, {}, {}
    with section("preflight") as guard:
        ready = preflight(guard, device, size)
    if ready:
        with section("correctness") as guard:
            verdicts.update(correctness(guard, device, size))
            print()
            verdicts.update({("graph", *k): v for k, v in graph_replay(guard, device, size).items()})
            print()
            verdicts["barriers"] = barriers(device)
    with section("training step") as guard:
        steps = training_steps(guard, device, size, repeats, warmup, verdicts, ready)
    if ready:
        with section("evaluation") as guard:
            evaluation(guard, device, size, repeats, warmup)
    with section("BN-Inception") as guard:
        table("BN-Inception", "images/s", "note")
        for training in (True, False):
            guard.check()
            label = "fine-tuning" if training else "extraction"
            try:
                rates[label] = bninception(device, bf16=True, training=training, **cnn)
                row(f"{label}, bf16 + channels_last", f"{rates[label]:.1f}",
                    f"{cnn['pixels']} px, batch {cnn['batch']}")
            except Exception as error:  # noqa: BLE001  (the row says it)
                row(f"{label}, bf16 + channels_last", "error", one_line(error))
    with section("GPU-hours") as guard:
        graphed = {model: steps[f"{model}/triton-graphed"] for model in MODELS
                   if f"{model}/triton-graphed" in steps}
        table("config", "recurrent runs", "steps", "GPU-hours",
              f"from the graphed {', '.join(DEFAULT)} steps")
        for config in ("paper.yaml", "mstcn.yaml"):
            guard.check()
            if "ddlstm" not in graphed:
                row(f"config/{config}", "-", "-", "-", "no measured graphed DDLSTM step")
                continue
            runs, total, hours, note = gpu_hours(ROOT / "config" / config, graphed, size,
                                                 rates.get("fine-tuning"))
            row(f"config/{config}", runs, f"{total:,}", f"{hours:.1f}", note)
    print(f"\n({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
