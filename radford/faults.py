"""What a long run meets: pre-emption, Ctrl-C, a diverging loss, a kill mid-save, and a resume that cannot match.

``radford fit`` adds all of these to every run (``radford.lightning_cli``):

- ``AtomicCheckpointIO`` writes each checkpoint to a temporary file beside it and renames it into place, so a kill
  at any moment leaves the previous ``last.ckpt`` or the new one, never half of one. (Lightning's own writer
  stages in the system temporary folder and *moves* the file, which is a copy when that is another filesystem.)
  It reads checkpoints without running pickled code, with one clear line for a truncated or foreign file.
- ``StopOnSignal``: SIGTERM (how a cluster pre-empts a job) or a first Ctrl-C finishes the current step, saves a
  resumable ``last.ckpt`` and stops; a second Ctrl-C aborts at once (status 130, as the first).
- ``KeepFinalState``: the last step of a fit is validated and saved, whatever ``val_check_interval`` is.
- ``StopOnNonFiniteLoss``: a NaN or infinite loss stops the run before the step that would spread it into the
  weights, naming the step and the last good checkpoint.
- ``read_resumable``, ``model_arguments_replaced`` and ``check_resumable``: resuming with ``--ckpt_path`` reads
  the checkpoint once (``AtomicCheckpointIO.reuse`` hands that read to Lightning's restore); a recipe whose model
  arguments differ from the checkpoint's names the fields (the model is rebuilt with the checkpoint's), and a
  model that cannot hold its weights (another vocabulary, say) is refused before Lightning fails on a shape.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from radford.checkpoints import save_atomically, torch_load
from radford.errors import RadfordError

SIGNAL_EXIT_STATUS = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}  # the shell's convention


class Stopped(SIGTERMException):
    """A run stopped on a signal after saving ``checkpoint``; the CLI prints how to resume."""

    def __init__(self, reason: str, step: int, checkpoint: str) -> None:
        super().__init__(SIGNAL_EXIT_STATUS[reason])
        self.reason, self.step, self.checkpoint = reason, step, checkpoint


def read_resumable(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint's contents (tensors memory-mapped, no pickled code run); one line for anything else."""
    checkpoint = torch_load(path, map_location=map_location)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise RadfordError(f"{path} is not a Lightning checkpoint: it has no state_dict to resume from")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self) -> None:
        super().__init__()
        self._read: tuple[Path, dict[str, Any]] | None = None

    def reuse(self, path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
        """The next load of ``path`` returns ``checkpoint``, read already (the CLI reads a resumed one first)."""
        self._read = (Path(path).resolve(), checkpoint)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_atomically(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        read, self._read = self._read, None
        if read is not None and read[0] == Path(path).resolve() and map_location in (None, "cpu"):
            return read[1]
        return read_resumable(path, map_location or "cpu")


def _checkpoint_path(trainer: L.Trainer) -> Path:
    callback = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    folder = callback.dirpath if callback is not None and callback.dirpath else Path(trainer.default_root_dir)
    return Path(folder) / "last.ckpt"


class StopOnSignal(L.Callback):
    """SIGTERM or a first Ctrl-C: finish the step, save ``last.ckpt``, stop with ``Stopped``."""

    def __init__(self) -> None:
        self._interrupted = False
        self._trained = False  # a step of this run done: something to save
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if type(exception) is SIGTERMException and trainer.state.fn == TrainerFn.FITTING:
            # Lightning acted on SIGTERM itself (during validation, or at an epoch's end): save there too, and make
            # its exit say so, with the shell's status for SIGTERM rather than 0. Before the first step there is
            # nothing to save (the run's folder goes).
            path = self._save(trainer) if self._trained else None
            exception.code = SIGNAL_EXIT_STATUS["SIGTERM"]
            exception.reason, exception.step, exception.checkpoint = "SIGTERM", trainer.global_step, path

    def _restore(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        print(
            "\nradford: stopping after this step to save a checkpoint (Ctrl-C again aborts without one)",
            file=sys.stderr,
            flush=True,
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._trained = True
        # Lightning notes SIGTERM but acts on it only at the end of an epoch, which a long run may never reach.
        reason = "SIGTERM" if trainer.received_sigterm else "SIGINT" if self._interrupted else None
        if trainer.world_size > 1:  # every rank stops at the same step, or the collective save would hang
            code = torch.tensor(0 if reason is None else 1 if reason == "SIGTERM" else 2)
            code = int(trainer.strategy.reduce(code, reduce_op="max"))
            reason = (None, "SIGTERM", "SIGINT")[code]
        if reason is None:
            return
        raise Stopped(reason, trainer.global_step, self._save(trainer))

    @staticmethod
    def _save(trainer: L.Trainer) -> str:
        path = _checkpoint_path(trainer)
        trainer.save_checkpoint(path, weights_only=False)  # with optimizer and loop state: resumable
        return str(path.resolve())


class KeepFinalState(Checkpoint):
    """The last step of every fit is validated and saved, whatever ``val_check_interval`` is: a run of 250 steps
    that validates every 200 would otherwise report the loss of step 200 and leave its weights on disk.

    At the last step it asks Lightning to stop, which makes it validate there (as before an early stop), and the
    ``ModelCheckpoint`` saves after that validation; without validation data, this saves ``last.ckpt`` at the end of
    training. It is a ``Checkpoint`` because Lightning runs those last, in order: after the ``ModelCheckpoint``, so it
    sees that one's save."""

    def __init__(self) -> None:
        self._saved_at: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._saved_at = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_at != trainer.global_step and not trainer.fast_dev_run:  # a smoke test saves nothing
            trainer.save_checkpoint(_checkpoint_path(trainer), weights_only=False)


class StopOnNonFiniteLoss(L.Callback):
    """Stop before the backward pass of a NaN or infinite loss, so the saved weights stay the last good ones."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if torch.isfinite(loss).all():
            return
        callback = trainer.checkpoint_callback
        last = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        good = f"the last good checkpoint is {Path(last).resolve()}" if last else "no checkpoint was saved before it"
        raise RadfordError(f"the loss is {loss.item()} at step {trainer.global_step}; stopped: {good}")


def _plain(value: Any) -> Any:
    """Tuples as lists and namespaces as dicts, so a recipe's values compare equal to a checkpoint's."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


def model_arguments_replaced(checkpoint: dict[str, Any], model_config: Any, linked: Collection[str] = ()) -> str:
    """What resuming from ``checkpoint`` changes in the recipe's model arguments: the model is rebuilt with the
    checkpoint's. Empty when nothing changes; one line naming the fields otherwise.

    ``linked`` arguments are set from the data module when it is built, later than this: ``check_resumable``
    compares those through the shapes of the weights.
    """
    saved = checkpoint.get("hyper_parameters") or {}
    configured = _plain(getattr(model_config, "init_args", None)) or {}
    fields = [
        f"{key} {saved[key]!r} (recipe: {configured[key]!r})"
        for key in sorted(saved)
        if key in configured and key not in linked and _plain(saved[key]) != configured[key]
    ]
    return f"the model keeps the checkpoint's settings: {', '.join(fields)}" if fields else ""


def check_resumable(model: L.LightningModule, checkpoint: dict[str, Any], ckpt_path: str | os.PathLike) -> None:
    """Refuse, naming the fields that differ, a checkpoint (read from ``ckpt_path``) whose weights this model
    cannot hold."""
    saved, ours = checkpoint["state_dict"], model.state_dict()
    mismatched = sorted(set(saved) ^ set(ours)) + [
        name for name in saved.keys() & ours.keys() if saved[name].shape != ours[name].shape
    ]
    if not mismatched:
        return
    old, new = checkpoint.get("hyper_parameters", {}), dict(model.hparams)
    fields = [
        f"{key} {old.get(key)!r} in the checkpoint, {new.get(key)!r} now"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
    differ = "; ".join(fields) if fields else f"weights {', '.join(mismatched[:5])}"
    raise RadfordError(f"cannot resume from {ckpt_path}: the recipe's model does not match it ({differ})")
