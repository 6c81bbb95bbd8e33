"""Recycling of the fused kernel's large per-call buffers across training steps.

One training step of a 3-layer paper-size DDLSTM needs about 1.5 GB of per-step workspaces.
On the CPU, PyTorch hands allocations that large to the C library, which maps fresh pages for
each one: the page faults alone cost a large share of a step on the 2-core development machine.
The kernel therefore takes its workspaces from this pool and gives them back at the end of its
backward pass, so that a training loop reuses the same warm memory every step. (CUDA's caching
allocator already does this; the pool is only used for CPU tensors.)

A workspace is in the pool only while no autograd graph refers to it: a forward whose backward
never runs simply lets its buffers be garbage-collected. `release()` empties the pool.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import torch

_MAX_PER_SHAPE = 8  # a few layers' worth of buffers of each shape


class WorkspacePool:
    def __init__(self):
        self._free: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        self._lock = threading.Lock()

    def take(self, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of `shape` with the dtype and device of `like`."""
        if like.device.type != "cpu":
            return like.new_empty(shape)
        key = (tuple(shape), like.dtype)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return like.new_empty(shape)

    def give(self, *tensors: torch.Tensor | None) -> None:
        """Return buffers nothing else refers to any more."""
        with self._lock:
            for t in tensors:
                if t is None or t.device.type != "cpu":
                    continue
                free = self._free[(tuple(t.shape), t.dtype)]
                if len(free) < _MAX_PER_SHAPE:
                    free.append(t)

    def release(self) -> None:
        """Drop every pooled buffer (frees the memory)."""
        with self._lock:
            self._free.clear()


POOL = WorkspacePool()
