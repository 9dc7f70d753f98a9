"""Checkpoints a killed run can resume from, and a resume that checks what it resumes.

A run saves ``last.ckpt`` every ``train.checkpoint_every_n_steps`` optimiser steps and at each
epoch's end, so a crash costs at most that many steps; a SIGTERM (a scheduler's time limit or
preemption) costs none: the run saves where it stopped. Every save is atomic; a re-run first
checks that ``last.ckpt`` is a safe-to-load checkpoint of the same task, network and output count,
so that resuming the wrong folder is one line, not a Lightning traceback or a silently wrong run.
"""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hsjp.config import Config
from hsjp.errors import CheckpointError, brief
from hsjp.io import atomic_write_bytes

LAST = "last"


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """A checkpoint's contents, refusing pickled code (``weights_only``) with a one-line error.

    ``mmap`` maps the tensors instead of reading them, for a cheap look at the metadata.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as e:  # torch raises pickle, zip and runtime errors for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({brief(e)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a training checkpoint (holds a {type(ckpt).__name__})")
    return ckpt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's save writes through fsspec into the system temp folder and then moves the file: a
    move across file systems is a copy that a kill leaves half-written, and a kill mid-save leaves
    the temp file behind. This writes beside the target, fsyncs and renames (``atomic_write_bytes``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())


def last_checkpoint_callbacks(ckpt_dir: Path, every_n_steps: int) -> list[ModelCheckpoint]:
    """``last.ckpt`` every ``every_n_steps`` steps (0: never) and at every epoch's end.

    Lightning allows one trigger per callback, so two callbacks write the same file. Each keeps it as
    its single top-1 file named ``last`` rather than using ``save_last``: with ``save_top_k=0``,
    Lightning writes ``save_last``'s file only after another save, so it would never be written.
    """
    def every(**trigger: int) -> ModelCheckpoint:
        return ModelCheckpoint(dirpath=ckpt_dir, filename=LAST, save_top_k=1, enable_version_counter=False,
                               save_on_train_epoch_end=True, **trigger)

    return [every(every_n_epochs=1)] + ([every(every_n_train_steps=every_n_steps)] if every_n_steps > 0 else [])


class StopOnSigterm(Callback):
    """On SIGTERM every process stops at the end of the same step, with ``last.ckpt`` saved there.

    So the re-run loses no step. The signal handler only notes the signal; at each step's end the
    processes agree (one all-reduce of a flag under DDP) whether any of them got one, so a scheduler
    may signal one process or all. Lightning's own handler, which this replaces once training starts,
    runs collectives inside the handler and stops each process where it got the signal: under DDP
    that hung (one rank in a checkpoint barrier, the other gone). Raises Lightning's
    ``SIGTERMException`` on every process once the save is done.

    The validation after fit (``trainer.validate``) stops the same way, after the same batch on every
    process, with nothing to save: the re-run finds training done and validates again.

    A step that ends a validated epoch is the exception: Lightning resumes a checkpoint saved there
    in the next epoch, so that epoch's validation would never run. The run saves at once (a kill
    during validation loses nothing), validates, and stops at the epoch's end with ``last.ckpt``
    saved again, as an epoch-end checkpoint.
    """

    def __init__(self, ckpt_dir: Path):
        self.path = ckpt_dir / f"{LAST}.ckpt"
        self.received = False
        self.stopping = False

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._listen()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # the validation after fit, where Lightning set its handler again
            self._listen()

    def _listen(self) -> None:
        self.received = self.stopping = False
        if threading.current_thread() is threading.main_thread():  # Lightning has set its handler by now
            signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.received = True

    def on_validation_batch_end(self, trainer: Any, *args: Any) -> None:
        """In the validation after fit, every process stops after the same batch; the re-run validates again."""
        if trainer.state.fn == TrainerFn.VALIDATING and trainer.strategy.reduce_boolean_decision(self.received, all=False):
            raise SIGTERMException

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if self.stopping or not trainer.strategy.reduce_boolean_decision(self.received, all=False):
            return
        trainer.save_checkpoint(self.path)
        if _validates_after_this_step(trainer):
            self.stopping = True
            return
        raise SIGTERMException

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.stopping:
            trainer.save_checkpoint(self.path)
            raise SIGTERMException


def _validates_after_this_step(trainer: Any) -> bool:
    """Whether the epoch ends with this step and validates (``check_val_every_n_epoch``: the run's
    trainers validate at epoch ends only)."""
    return (trainer.is_last_batch and trainer.enable_validation
            and (trainer.current_epoch + 1) % trainer.check_val_every_n_epoch == 0)


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Temp files of a save that a kill interrupted (``atomic_write_bytes`` names them ``.NAME.*.tmp``)."""
    for tmp in ckpt_dir.glob(".*.ckpt.*.tmp"):
        tmp.unlink(missing_ok=True)


def check_resumable(path: Path, cfg: Config, num_outputs: int) -> int:
    """Refuse ``path`` unless it continues this run (task, network, outputs); returns its step."""
    ckpt = read_checkpoint(path, mmap=True)
    try:
        hp = ckpt["hyper_parameters"]
        theirs = (hp["cfg"]["task"], hp["cfg"]["model"]["arch"], int(hp["num_outputs"]))
        step = int(ckpt["global_step"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: not an hsjp training checkpoint (no hyper_parameters.cfg); "
                              "delete it or choose another --out") from None
    ours = (cfg.task, cfg.model.arch, num_outputs)
    if theirs != ours:
        describe = "{} {} with {} outputs".format
        raise CheckpointError(f"{path}: cannot resume a {describe(*theirs)} run as a {describe(*ours)} run; "
                              "choose another --out, or train.resume=false to start over")
    return step
