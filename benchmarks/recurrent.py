"""Training-step time of the recurrent models against PyTorch's fused nn.LSTM, their evaluation time,
and the number of PyTorch operator calls a step makes.

One step = forward over a (B, T, input) batch, a linear head with cross-entropy on every frame,
backward, and an SGD update, as in the recurrent stage's training loop. Variants are run
interleaved (round-robin over repeats) so that drifts in machine speed hit all of them alike, and
the median step time of each is reported with its ratio to nn.LSTM. Each of LSTM / BNLSTM / DDLSTM
runs through the kernels asked for: "native" (the C++ per-timestep loop, CPU), "fused" (the tensor
kernel, any device) and, on CUDA, "graphed" (the fused kernel's whole training step captured once
as a CUDA graph and replayed, as the recurrent stage does there), "triton" (the Triton kernels,
`pipeline/models/triton_kernel`) and "triton-graphed" (those with the step captured as a CUDA graph).

    python benchmarks/recurrent.py                         # demo, medium and paper sizes
    python benchmarks/recurrent.py --sizes paper --repeats 5 --threads 2
    python benchmarks/recurrent.py --kernels fused --device cuda
    python benchmarks/recurrent.py --launches              # only the Triton launch counts (any machine)

Kernel launches of the Triton kernels (printed after the timings, or alone with --launches): one
training step of each model with implementation="triton" (forward, head, cross-entropy, backward,
SGD update, alpha projection) run on the CPU in the kernels' counting mode
(`pipeline.models.triton_kernel.checks.count_step`): the Triton kernels are counted by their launch
helper and not executed (shapes are static: the count is exact), every aten operator around them by
torch.profiler, nested calls included (an upper bound of what launches on a GPU). No GPU is needed.

Operator calls: every aten operator one training step (or one evaluation forward) records under
torch.profiler, nested calls included, on the device the benchmark runs on. On a GPU each is at
least one kernel launch, so the count predicts how a step will behave there.

Evaluation: one batch of B windows through the model in evaluation mode without a graph (what
online evaluation does, `pipeline.training.evaluation.predict_video`), against nn.LSTM's forward.

Sizes: "paper" is the paper's recurrent stage (docs/method.md §5: B=128, 64 windows per dataset,
T=200, H=128, 3 layers, input 64); "medium" a features-only run at the size the convergence study
uses (B=64, T=100, H=64, 3 layers, input 69); "demo" the default workflow's (B=32, T=50, H=32,
2 layers, input 24).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from pipeline.models import create_model, native
from pipeline.training.graphs import GraphedStep

SIZES = {
    # name: (batch, timesteps, hidden, layers, input, classes)
    "demo": (32, 50, 32, 2, 24, 20),
    "medium": (64, 100, 64, 3, 69, 50),
    "paper": (128, 200, 128, 3, 64, 100),
}
MODELS = ("lstm", "bnlstm", "ddlstm")


class _TorchLSTM(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x, domain_sizes=None, domain=None):
        return self.lstm(x)[0]


def build(variant, size, device):
    batch, steps, hidden, layers, inputs, classes = size
    if variant == "nn.LSTM":
        body = _TorchLSTM(inputs, hidden, layers)
    else:
        kind, kernel = variant.split("/")
        implementation = {"graphed": "fused", "triton-graphed": "triton"}.get(kernel, kernel)
        body = create_model(kind, inputs, hidden, layers, max_timesteps=steps, implementation=implementation)
    head = nn.Linear(hidden, classes)
    body.to(device).train()
    head.to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, inputs, generator=gen).to(device)
    y = torch.randint(0, classes, (batch, steps), generator=gen).to(device)
    return body, head, x, y


def make_step(variant, size, device, project_alphas=False):
    """One training step of `variant`; `project_alphas`: also the alphas' projection, as the recurrent
    stage does after each update (counted for the launches, not in the timings)."""
    batch, _, _, _, _, classes = size
    body, head, x, y = build(variant, size, device)
    params = list(body.parameters()) + list(head.parameters())
    sizes = [batch // 2, batch - batch // 2]

    def train_step(x, mask, y, sizes):
        out = body(x, domain_sizes=sizes)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, classes), y.reshape(-1))
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-0.01)
        if project_alphas:
            body.constrain_alphas_()
        return loss.detach()

    # "graphed": the whole step captured once as a CUDA graph and replayed (pipeline.training.graphs)
    runner = GraphedStep(train_step, enabled=variant.endswith("graphed"))

    def step():
        runner(x, x, y, sizes)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def make_evaluation(variant, size, device):
    batch = size[0]
    body, _, x, _ = build(variant, size, device)
    body.train()
    with torch.no_grad():
        body(x, domain_sizes=[batch // 2, batch - batch // 2])  # population statistics worth using
    body.eval()

    @torch.no_grad()
    def evaluate():
        body(x, domain=0)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return evaluate


def operator_calls(run) -> int:
    run()  # warm: the native kernel's first call, allocator pools
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        run()
    return sum(event.count for event in prof.key_averages() if event.key.startswith("aten::"))


def triton_launches(size_name: str, model: str = "ddlstm") -> dict:
    """Kernel launches of one Triton training step at a size, counted on the CPU (nothing executed):
    {"triton", "aten", "total", "by_kernel"} (see the module docstring)."""
    from pipeline.models.triton_kernel import checks

    step = make_step(f"{model}/triton", SIZES[size_name], torch.device("cpu"), project_alphas=True)
    return checks.count_step(step)


def print_launches(size_names) -> None:
    try:
        import triton  # noqa: F401
    except ImportError as error:
        print(f"\nTriton launch counts: Triton is not installed ({error})")
        return
    print("\nKernel launches per training step, implementation='triton' (counted on the CPU, kernels not "
          "run: Triton launches exact, aten operators an upper bound)")
    print("| size | model | Triton launches | aten operators | total |")
    print("|---|---|---|---|---|")
    for size_name in size_names:
        for model in MODELS:
            count = triton_launches(size_name, model)
            print(f"| {size_name} | {model} | {count['triton']:,} | {count['aten']:,} | {count['total']:,} |",
                  flush=True)


def timed(runs: dict, repeats: int, warmup: int) -> dict:
    times = {name: [] for name in runs}
    for _ in range(warmup):
        for run in runs.values():
            run()
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def report(size_name, repeats, warmup, kernels, device, count_ops):
    size = SIZES[size_name]
    variants = ["nn.LSTM", *[f"{model}/{kernel}" for model in MODELS for kernel in kernels]]
    steps = {v: make_step(v, size, device) for v in variants}
    evaluations = {v: make_evaluation(v, size, device) for v in variants}
    train_times = timed(steps, repeats, warmup)
    eval_times = timed(evaluations, repeats, warmup)
    batch, t, hidden, layers, inputs, _ = size
    print(f"\n{size_name}: B={batch} T={t} H={hidden} layers={layers} input={inputs} "
          f"({repeats} interleaved repeats, {torch.get_num_threads()} threads, {device})")
    print("| variant | train ms (median) | train vs nn.LSTM (median / min) | eval ms (median) | eval vs nn.LSTM "
          "| operator calls, train step | operator calls, eval |")
    print("|---|---|---|---|---|---|---|")
    base_med, base_min = statistics.median(train_times["nn.LSTM"]), min(train_times["nn.LSTM"])
    eval_base = statistics.median(eval_times["nn.LSTM"])
    for v in variants:
        med, low = statistics.median(train_times[v]), min(train_times[v])
        eval_med = statistics.median(eval_times[v])
        ops = f"{operator_calls(steps[v]):,} | {operator_calls(evaluations[v]):,}" if count_ops else "- | -"
        print(f"| {v} | {med * 1e3:.1f} | {med / base_med:.2f} / {low / base_min:.2f} | {eval_med * 1e3:.1f} | "
              f"{eval_med / eval_base:.2f} | {ops} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "medium", "paper"])
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per variant (default: 30 demo, 10 medium, 5 paper)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--kernels", nargs="+", default=None,
                        choices=("native", "fused", "graphed", "triton", "triton-graphed", "reference"),
                        help="default: native and fused on the CPU (native where it can be built); fused, "
                             "graphed (the fused kernel's step captured as a CUDA graph), triton and "
                             "triton-graphed on CUDA")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all)")
    parser.add_argument("--no-ops", action="store_true", help="skip counting operator calls and launches")
    parser.add_argument("--launches", action="store_true",
                        help="only print the Triton kernels' launches per training step (no timings)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.launches:
        print_launches(args.sizes)
        return
    device = torch.device(args.device)
    if args.kernels:
        kernels = args.kernels
    elif device.type == "cuda":
        kernels = ["fused", "graphed", "triton", "triton-graphed"]
    else:
        kernels = ["native", "fused"] if native.available() else ["fused"]
    for name in args.sizes:
        repeats = args.repeats or {"demo": 30, "medium": 10, "paper": 5}[name]
        report(name, repeats, args.warmup, kernels, device, not args.no_ops)
    if not args.no_ops:
        print_launches(args.sizes)


if __name__ == "__main__":
    main()
