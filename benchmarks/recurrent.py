"""Training-step time of the recurrent models against PyTorch's fused nn.LSTM.

One step = forward over a (B, T, input) batch, a linear head with cross-entropy on every frame,
backward, and an SGD update, as in the recurrent stage's training loop. Variants are run
interleaved (round-robin over repeats) so that drifts in machine speed hit all of them alike, and
the median step time of each is reported with its ratio to nn.LSTM.

    python benchmarks/recurrent.py                 # demo and paper sizes
    python benchmarks/recurrent.py --sizes paper --repeats 5
    python benchmarks/recurrent.py --implementation reference   # the step-by-step cell

Sizes: "paper" is the paper's recurrent stage (docs/method.md §5) (B=128: 64 windows per dataset, T=200, H=128,
3 layers, input 64); "demo" the default workflow's (B=32, T=50, H=32, 2 layers, input 24).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from pipeline.models import create_model

SIZES = {
    # name: (batch, timesteps, hidden, layers, input, classes)
    "demo": (32, 50, 32, 2, 24, 20),
    "paper": (128, 200, 128, 3, 64, 100),
}
VARIANTS = ("nn.LSTM", "lstm", "bnlstm", "ddlstm")


class _TorchLSTM(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x, domain_sizes=None):
        return self.lstm(x)[0]


def make_step(variant, size, implementation, device):
    batch, steps, hidden, layers, inputs, classes = size
    if variant == "nn.LSTM":
        body = _TorchLSTM(inputs, hidden, layers)
    else:
        body = create_model(variant, inputs, hidden, layers, max_timesteps=steps,
                            implementation=implementation)
    head = nn.Linear(hidden, classes)
    body.to(device).train()
    head.to(device)
    params = list(body.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=0.01)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, inputs, generator=gen).to(device)
    y = torch.randint(0, classes, (batch, steps), generator=gen).to(device)
    sizes = [batch // 2, batch - batch // 2]

    def step():
        out = body(x, domain_sizes=sizes)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, classes), y.reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def run(size_name, repeats, warmup, implementation, device):
    size = SIZES[size_name]
    steps = {v: make_step(v, size, implementation, device) for v in VARIANTS}
    times = {v: [] for v in VARIANTS}
    for _ in range(warmup):
        for step in steps.values():
            step()
    for _ in range(repeats):
        for v, step in steps.items():
            start = time.perf_counter()
            step()
            times[v].append(time.perf_counter() - start)
    base_med, base_min = statistics.median(times["nn.LSTM"]), min(times["nn.LSTM"])
    batch, t, hidden, layers, inputs, _ = size
    print(f"\n{size_name}: B={batch} T={t} H={hidden} layers={layers} input={inputs} "
          f"({repeats} interleaved repeats, {torch.get_num_threads()} threads, {device})")
    # The min ratio is the less disturbed figure on a shared machine whose speed drifts.
    print("| variant | median ms/step | min ms/step | median vs nn.LSTM | min vs nn.LSTM |")
    print("|---|---|---|---|---|")
    for v in VARIANTS:
        med, low = statistics.median(times[v]), min(times[v])
        print(f"| {v} | {med * 1e3:.1f} | {low * 1e3:.1f} | {med / base_med:.2f} | "
              f"{low / base_min:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["demo", "paper"])
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per variant (default: 30 demo, 7 paper)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--implementation", choices=("fused", "reference"), default="fused")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.sizes:
        repeats = args.repeats or (30 if name == "demo" else 7)
        run(name, repeats, args.warmup, args.implementation, torch.device(args.device))


if __name__ == "__main__":
    main()
