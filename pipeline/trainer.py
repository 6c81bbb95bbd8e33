"""A resumable training loop: checkpoints, logs that survive a restart, a stop on NaN or inf.

Every iteration's randomness must be a function of (seed, iteration) alone (the callers derive
their generators from both), so that a run restarted from `checkpoint.pt` repeats exactly what the
killed run would have done: the checkpoint holds the model, the optimiser, the iteration, the log
rows so far and the caller's own running state (`Trainer.extra`), and the run continues from there
to the same weights and the same metrics. Every training step of the pipeline runs through it: the
frame classifier's fine-tuning, the boundary LSTM and the recurrent models.

Checkpoints hold tensors, numbers, strings, lists and dicts only, and load with
`torch.load(weights_only=True)`: a file planted in a shared results folder cannot run code, it is
refused (`load_checkpoint`). Each save keeps the one before as `checkpoint.prev.pt`, so that a
damaged `checkpoint.pt` (truncated by a full disk, overwritten) is reported by name and the run
resumes from the previous one.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from .io import save_torch, write_csv
from .progress import progress_bar

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A saved file (checkpoint, model) that cannot be loaded as one; the message names it."""


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """`torch.load(path, weights_only=True)` on the CPU, with every way a file can be damaged or
    foreign (truncated, empty, other bytes, a pickle of arbitrary objects) a CheckpointError naming
    it; a missing file stays FileNotFoundError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the {what} is empty (a write cut short?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = [line.strip() for line in str(error).splitlines() if "Unsupported" in line]
        if found and "Unsupported global" in found[0]:  # a pickle of other objects, not bytes gone wrong
            name = found[0].split("GLOBAL", 1)[-1].split(" was ")[0].strip()
            raise CheckpointError(f"{path}: the {what} holds Python objects beyond tensors and plain values ({name}), "
                                  "which are not loaded (they could run code): it was not written by this "
                                  "pipeline") from None
        reason = found[0].split("error:")[-1].strip() if found else str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: the {what} is damaged ({reason[:200]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: the {what} is damaged ({reason[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a {what} of this pipeline (found a {type(state).__name__})")
    return state


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

    @property
    def previous_path(self) -> Path:
        return self.checkpoint_path.with_name("checkpoint.prev.pt")

    def _load(self) -> dict | None:
        """The newest loadable checkpoint: checkpoint.pt, or where it is damaged the one before it."""
        candidates = [p for p in (self.checkpoint_path, self.previous_path) if p.is_file()]
        errors = []
        for path in candidates:
            try:
                state = load_checkpoint(path)
                if not {"fingerprint", "model", "optimizer", "iteration"} <= set(state):
                    raise CheckpointError(f"{path}: not a training checkpoint of this pipeline (it lacks "
                                          f"{sorted({'fingerprint', 'model', 'optimizer', 'iteration'} - set(state))})")
            except CheckpointError as error:
                errors.append(str(error))
                continue
            if errors:
                log.warning("%s; resuming from the checkpoint before it, %s (iteration %d)", errors[0], path,
                            state["iteration"])
            return state
        if errors:
            raise CheckpointError(f"{errors[0]}" + (f"; {errors[1]}" if len(errors) > 1 else "") +
                                  f"; delete {' and '.join(str(p) for p in candidates)} to start this run afresh")
        return None

    def resume(self, restart_on_change: bool = False) -> int:
        """Load the checkpoint if there is one from the same configuration; return the iteration.

        A checkpoint of another configuration is an error, or with `restart_on_change` (what the
        workflow asks for when a changed parameter reruns a job) it is set aside as
        `checkpoint.stale.pt` and training starts afresh. A damaged checkpoint.pt falls back to
        checkpoint.prev.pt, with a warning; with both damaged the error says what to delete.
        """
        state = self._load()
        if state is None:
            return 0
        if state["fingerprint"] != self.fingerprint:
            changed = sorted(k for k in set(state["fingerprint"]) | set(self.fingerprint)
                             if state["fingerprint"].get(k) != self.fingerprint.get(k))
            if restart_on_change:
                log.warning("%s is from another configuration (differs in %s): starting afresh",
                            self.checkpoint_path, changed)
                for path in (self.checkpoint_path, self.previous_path):
                    if path.is_file():
                        path.replace(path.with_name(path.name.replace("checkpoint", "checkpoint.stale", 1)))
                return 0
            raise ValueError(f"{self.checkpoint_path} was written by a run with another configuration "
                             f"(differs in {changed}); delete it to start afresh")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"{self.checkpoint_path}: does not fit this model ({reason[:200]}); it was written "
                                  "by another version of the pipeline? delete it to start afresh") from None
        self.iteration, self.logs, self.window = state["iteration"], state["logs"], state["window"]
        self.extra = state.get("extra", {})
        log.info("resuming %s from %s at iteration %d", self.description, self.checkpoint_path, self.iteration)
        return self.iteration

    def save(self) -> None:
        self._settle()  # a checkpoint never holds the state after a non-finite loss
        state = {"fingerprint": self.fingerprint, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "iteration": self.iteration, "logs": self.logs,
                 "window": self.window, "extra": self.extra}
        temporary = self.checkpoint_path.with_name(f".{self.checkpoint_path.name}.part")
        save_torch(state, temporary)
        if self.checkpoint_path.is_file():  # the one before stays, in case this one is damaged later
            os.replace(self.checkpoint_path, self.previous_path)
        os.replace(temporary, self.checkpoint_path)
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
