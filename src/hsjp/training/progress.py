"""What a training run shows: one line saying what it trains, one progress bar, and no Lightning chatter.

Lightning announces accelerators, precision, loader limits and a cloud-logging tip at info level on
every Trainer; an experiment builds several, so the screen filled with the same banners. They stay
available with ``HSJP_LOG=INFO``.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_utilities")
#: Lightning warnings that do not apply to hsjp's runs, each with the reason.
KNOWN_WARNINGS = (
    # data.num_workers is sized to the machine on purpose (1 on a 2-core CPU)
    ".*does not have many workers.*",
    # a deprecation inside Lightning's own code, not ours to act on
    ".*`isinstance\\(treespec, LeafSpec\\)`.*",
    # a resumed run reuses its folders on purpose (keep_earlier_logs keeps the earlier metrics.csv)
    ".*(Checkpoint|Experiment logs) directory .* exists and is not empty.*",
    # the run's header line says what a mid-epoch resume does with the data instead
    ".*resuming from a checkpoint that ended before the epoch ended.*",
    # a run without validation data has an empty list of validation loaders, on purpose
    ".*Total length of `list` across ranks is zero.*",
    # an epoch shorter than log_every_n_steps (1 % of the labels: 5 batches) still logs every n global steps
    ".*is smaller than the logging interval.*",
    # pose validation metrics are computed once from every process's gathered predictions, not averaged
    ".*It is recommended to use `self.log\\('val/.*sync_dist=True.*",
)


def quiet_lightning() -> None:
    """Lightning's info messages only when the user asked for them (``HSJP_LOG``), and none of its
    warnings that do not apply. Called again for every Trainer, because a caller's
    ``warnings.catch_warnings`` (pytest's, around every test) drops filters added before it."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    if not os.environ.get("HSJP_LOG"):
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


class RunHeader(Callback):
    """One line when the fit starts: what runs, for how many steps, from which step it resumes.

    Printed at ``on_fit_start``, which runs even for a finished run that is resumed (Lightning then
    skips training and its ``on_train_start``), before Lightning restores the step: hence ``resumed_step``.
    """

    def __init__(self, name: str, resumed_step: int = 0):
        self.name = name
        self.resumed_step = resumed_step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on every process: the first call sets the loaders up, which takes all processes (an all-reduce)
        total, step, per_epoch = trainer.estimated_stepping_batches, self.resumed_step, trainer.num_training_batches
        if not trainer.is_global_zero:
            return
        done = f", resuming at step {step:,}" if step else ""
        if step % per_epoch and step < total:  # what Lightning's "dataloader is not resumable" warning means here
            done += (f" (mid-epoch: epoch {step // per_epoch}'s last {per_epoch - step % per_epoch} batches "
                     "come from a fresh shuffle)")
        print(f"{self.name}: {total:,} steps{done} -> {trainer.default_root_dir} ({trainer.precision})", flush=True)


class RunProgressBar(TQDMProgressBar):
    """One bar for the whole run, counting optimiser steps (so its ETA is the run's, and a resumed
    run starts where it stopped), instead of Lightning's bar per epoch plus one per validation.

    Shown on a terminal only (tqdm's ``disable=None``): in a log file it would be carriage returns."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.name, total=self.trainer.estimated_stepping_batches, initial=self.trainer.global_step,
                    disable=None if self.is_enabled else True, dynamic_ncols=True, file=sys.stdout, leave=True)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self.train_progress_bar.set_description(f"{self.name} epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            bar.update(trainer.global_step - bar.n)
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the loggers' version, always '' here
        return metrics
