"""A training step replayed as a CUDA graph.

On a GPU the recurrent models' per-timestep loop launches thousands of small kernels a step, and
launching them from Python costs more than running them. A CUDA graph records the whole step once
(forward, loss, backward, optimiser update, alpha projection) and replays it with one launch. What
makes the step capturable: static shapes (a batch layout never changes within a run phase), no
host synchronisation inside it (the loss stays a tensor, read back by the training loop once per
log row; alpha bounds and gradients are written without copies from the host), and its inputs in
fixed buffers that each iteration's batch is copied into.

`GraphedStep` keeps one graph per batch layout (shapes and domain sizes: pre-train / fine-tune has
two). The first `warmup` iterations of a layout run eagerly on a side stream (they are real steps:
they create the optimiser's state and let the allocator settle), the next is captured and replayed,
and every later one is replayed. Off CUDA, or when disabled, it simply calls the step: the same
function, the same results.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class GraphedStep:
    """Calls `step(x, mask, targets, sizes) -> loss tensor`, on CUDA as a replayed graph."""

    def __init__(self, step: Callable, enabled: bool, warmup: int = 3):
        self.step = step
        self.enabled = enabled
        self.warmup = warmup
        self._graphs: dict = {}  # layout -> (graph, static inputs, static loss)
        self._seen: dict = {}  # layout -> eager iterations so far

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        if not (self.enabled and x.is_cuda):
            return self.step(x, mask, targets, sizes)
        layout = (tuple(x.shape), tuple(targets.shape), tuple(sizes))
        if layout in self._graphs:
            graph, inputs, loss = self._graphs[layout]
            for static, value in zip(inputs, (x, mask, targets)):
                static.copy_(value, non_blocking=True)
            graph.replay()
            return loss.clone()  # the graph's loss buffer is overwritten by the next replay
        seen = self._seen.get(layout, 0)
        if seen < self.warmup:
            self._seen[layout] = seen + 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.step(x, mask, targets, sizes)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        inputs = (x.clone(), mask.clone(), targets.clone())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss = self.step(*inputs, sizes)
        self._graphs[layout] = (graph, inputs, loss)
        graph.replay()  # capturing records the step; this replay performs it
        return loss.clone()
