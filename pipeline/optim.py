"""The optimisers of the pipeline's training steps: SGD (momentum, weight decay) and Adam, numerically
torch.optim.SGD (dampening 0, no Nesterov) and torch.optim.Adam (no weight decay, no AMSGrad).

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo, 2 s of every
training process on the development machine (5 s under load), which the workflow's ~100 short
training jobs would pay each. This is the few lines those jobs need: parameter groups with their own
learning rates (`param_groups[k]["lr"]` for schedules and for the alphas' scaled rate), `zero_grad`,
`step`, and `state_dict` / `load_state_dict` for exact resume. Both take a training step that a
CUDA graph can hold: no value is read back from the device, and Adam's step count is a tensor.

    optimizer = make_optimizer("adam", [{"params": weights}, {"params": alphas, "lr": 0.001}], lr=0.01)
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("sgd", "adam")


class _Optimizer:
    """Parameter groups (dicts with "params" and their settings) and the per-parameter state."""

    def __init__(self, params, **settings):
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            merged = {**settings, **{k: v for k, v in group.items() if k != "params"}}
            merged["params"] = [p for p in group["params"] if p.requires_grad]
            self.param_groups.append(merged)
        self.state: list[dict] = [{} for _ in self._parameters()]

    def _parameters(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _groups(self):
        """(group, parameter, its state) for every parameter with a gradient."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state[index]
                index += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        """Tensors, numbers and lists only: a checkpoint loads with torch.load(weights_only=True)."""
        return {"param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
                "state": [{k: v.clone() for k, v in s.items()} for s in self.state]}

    def load_state_dict(self, state: dict) -> None:
        parameters = self._parameters()
        if len(state["state"]) != len(parameters) or len(state["param_groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state for {len(state['state'])} parameters in {len(state['param_groups'])} "
                             f"groups; this model has {len(parameters)} in {len(self.param_groups)}")
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group.update(saved)
        self.state = [{k: v.to(p.device) for k, v in s.items()} for s, p in zip(state["state"], parameters)]


class SGD(_Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self) -> None:
        for group, p, state in self._groups():
            update = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
            if group["momentum"]:
                if "momentum" not in state:
                    state["momentum"] = update.detach().clone()
                else:
                    state["momentum"].mul_(group["momentum"]).add_(update)
                update = state["momentum"]
            p.add_(update, alpha=-group["lr"])


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) as torch.optim.Adam computes it (bias-corrected moments, eps added to
    the corrected second moment's square root)."""

    def __init__(self, params, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps)

    @torch.no_grad()
    def step(self) -> None:
        for group, p, state in self._groups():
            beta1, beta2 = group["betas"]
            if not state:
                # float64, as torch.optim.Adam's Python-float bias corrections
                state["step"] = torch.zeros((), dtype=torch.float64, device=p.device)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            state["exp_avg"].lerp_(p.grad, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            # the bias corrections from the step tensor: nothing is read back to the host
            step_size = (group["lr"] / (1 - torch.pow(beta1, state["step"]))).to(p.dtype)
            correction2_sqrt = (1 - torch.pow(beta2, state["step"])).sqrt().to(p.dtype)
            denominator = (state["exp_avg_sq"].sqrt() / correction2_sqrt).add_(group["eps"])
            p.sub_(state["exp_avg"] / denominator * step_size)


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0):
    """"sgd" (with `momentum`) or "adam" (its betas (0.9, 0.999); momentum must be 0)."""
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        if momentum:
            raise ValueError(f"momentum {momentum} is an SGD setting; Adam keeps its own moments (betas 0.9, "
                             "0.999): set momentum to 0 with optimizer adam")
        return Adam(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
