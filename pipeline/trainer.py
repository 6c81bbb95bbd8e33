"""A resumable training loop: checkpoints, logs that survive a restart, a stop on NaN or inf.

Every iteration's randomness must be a function of (seed, iteration) alone (the callers derive
their generators from both), so that a run restarted from `checkpoint.pt` repeats exactly what the
killed run would have done: the checkpoint holds the model, the optimiser, the iteration, the log
rows so far and the caller's own running state (`Trainer.extra`), and the run continues from there
to the same weights and the same metrics. Every training step of the pipeline runs through it: the
frame classifier's fine-tuning, the boundary LSTM and the recurrent models.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .io import save_torch, write_csv
from .progress import progress_bar

log = logging.getLogger(__name__)


class Trainer:
    """Runs `step(iteration) -> loss` from the last checkpoint to `total` iterations."""

    def __init__(self, model: torch.nn.Module, optimizer, output_dir: str | Path,
                 fingerprint: dict, checkpoint_every: int, description: str):
        self.model = model
        self.optimizer = optimizer
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.output_dir / "checkpoint.pt"
        self.fingerprint = fingerprint
        self.checkpoint_every = checkpoint_every
        self.description = description
        self.iteration = 0
        self.logs: dict[str, list[dict]] = {}
        self.window: list[float] = []  # losses since the last train_log row
        self.extra: dict = {}  # the caller's running state, saved and restored with the rest
        self._pending: list[tuple[int, torch.Tensor]] = []  # tensor losses not read back yet

    def resume(self, restart_on_change: bool = False) -> int:
        """Load `checkpoint.pt` if there is one from the same configuration; return the iteration.

        A checkpoint of another configuration is an error, or with `restart_on_change` (what the
        workflow asks for when a changed parameter reruns a job) it is set aside as
        `checkpoint.stale.pt` and training starts afresh.
        """
        if not self.checkpoint_path.exists():
            return 0
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        if state["fingerprint"] != self.fingerprint:
            changed = sorted(k for k in set(state["fingerprint"]) | set(self.fingerprint)
                             if state["fingerprint"].get(k) != self.fingerprint.get(k))
            if restart_on_change:
                log.warning("%s is from another configuration (differs in %s): starting afresh",
                            self.checkpoint_path, changed)
                self.checkpoint_path.replace(self.checkpoint_path.with_name("checkpoint.stale.pt"))
                return 0
            raise ValueError(f"{self.checkpoint_path} was written by a run with another configuration "
                             f"(differs in {changed}); delete it to start afresh")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration, self.logs, self.window = state["iteration"], state["logs"], state["window"]
        self.extra = state.get("extra", {})
        log.info("resuming %s from %s at iteration %d", self.description, self.checkpoint_path, self.iteration)
        return self.iteration

    def save(self) -> None:
        self._settle()  # a checkpoint never holds the state after a non-finite loss
        save_torch({"fingerprint": self.fingerprint, "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "iteration": self.iteration, "logs": self.logs,
                    "window": self.window, "extra": self.extra}, self.checkpoint_path)
        self.write_logs()

    def log(self, name: str, row: dict) -> None:
        """Add a row to the log `<name>.csv` (written at every checkpoint and at the end)."""
        self.logs.setdefault(name, []).append(row)

    def write_logs(self) -> None:
        for name, rows in self.logs.items():
            write_csv(rows, self.output_dir / f"{name}.csv")

    def run(self, total: int, step: Callable[[int], float | torch.Tensor], on_step: Callable[[int], None] | None = None,
            log_every: int = 100, checkpoint_also: Callable[[int], bool] | None = None) -> None:
        """Steps from the current iteration to `total`; a checkpoint every `checkpoint_every`
        iterations and wherever `checkpoint_also(iterations done)` says (e.g. at an epoch's end).

        `step` returns the loss as a float or as a tensor; tensors (e.g. on a GPU, from a captured
        CUDA graph) are read back once per log row or checkpoint instead of every step, so that a
        step need not wait for the device; a non-finite loss stops the run there, naming its step.
        """
        bar = progress_bar(total, self.description)
        bar.update(self.iteration)
        started = time.monotonic()
        while self.iteration < total:
            loss = step(self.iteration)
            self.iteration += 1
            if isinstance(loss, torch.Tensor):
                self._pending.append((self.iteration, loss.detach()))
            else:
                self._check(self.iteration, loss)
                self.window.append(loss)
            bar.update(1)
            if self.iteration % log_every == 0 or self.iteration == total:
                self._settle()
                mean = sum(self.window) / len(self.window)
                self.log("train_log", {"iteration": self.iteration, "loss": mean,
                                       "seconds_since_start": round(time.monotonic() - started, 2)})
                bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
                self.window = []
            due = self.iteration % self.checkpoint_every == 0 or (checkpoint_also and checkpoint_also(self.iteration))
            if due and self.iteration < total:
                self.save()
            if on_step is not None:
                on_step(self.iteration)
        self._settle()
        bar.close()

    def _check(self, iteration: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise FloatingPointError(f"{self.description}: loss is {loss} at iteration {iteration}; "
                                     "lower the learning rate or check the inputs")

    def _settle(self) -> None:
        """The tensor losses since the last look, read back at once and checked."""
        if not self._pending:
            return
        values = torch.stack([loss.float().reshape(()) for _, loss in self._pending]).cpu().tolist()
        for (iteration, _), value in zip(self._pending, values):
            self._check(iteration, value)
        self._pending = []
        self.window.extend(values)
