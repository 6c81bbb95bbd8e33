"""Plain SGD with momentum and weight decay, numerically torch.optim.SGD (dampening 0, no Nesterov).

Why not torch.optim.SGD: constructing any torch.optim optimizer imports torch._dynamo, 2 s of
every training process on the development machine (5 s under load), which the workflow's ~100
short training jobs would pay each. This is the few lines those jobs need: `param_groups[0]["lr"]`
for schedules, `zero_grad`, `step`, `state_dict` / `load_state_dict` for exact resume.
"""

from __future__ import annotations

import torch


class SGD:
    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"lr": lr, "momentum": momentum, "weight_decay": weight_decay}]
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        for index, p in enumerate(self.params):
            if p.grad is None:
                continue
            update = p.grad if weight_decay == 0 else p.grad.add(p, alpha=weight_decay)
            if momentum:
                buffer = self.buffers[index]
                if buffer is None:
                    buffer = self.buffers[index] = update.detach().clone()
                else:
                    buffer.mul_(momentum).add_(update)
                update = buffer
            p.add_(update, alpha=-lr)

    def state_dict(self) -> dict:
        return {"param_groups": [dict(g) for g in self.param_groups],
                "buffers": [None if b is None else b.clone() for b in self.buffers]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["buffers"]) != len(self.params):
            raise ValueError(f"optimizer state for {len(state['buffers'])} parameters, this model has {len(self.params)}")
        self.param_groups = [dict(g) for g in state["param_groups"]]
        self.buffers = [None if b is None else b.to(p.device) for b, p in zip(state["buffers"], self.params)]
