"""One training run, finetune or pretrain: config in, checkpoints, logs and metrics out.

The same function drives a laptop CPU run and a multi-node DDP run: devices, nodes, strategy and
precision go straight to Lightning's Trainer. It is resumable: re-running with the same ``out``
continues from ``checkpoints/last.ckpt``, saved atomically every ``train.checkpoint_every_n_steps``
steps and at each epoch's end (see ``checkpoints``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hsjp.config import PRETEXT_TASKS, Config, save_config, to_dict
from hsjp.errors import ConfigError, Interrupted, TrainingError
from hsjp.io import atomic_write_json
from hsjp.models.weights import export_network
from hsjp.training.checkpoints import (
    AtomicCheckpointIO,
    StopOnSigterm,
    check_resumable,
    last_checkpoint_callbacks,
    read_checkpoint,
    remove_stale_temporaries,
)
from hsjp.training.datamodule import CropDataModule, check_crop_settings, runs_on_cuda
from hsjp.training.modules import HeatmapModule, module_for
from hsjp.training.precision import resolve_precision, slow_precision_warning
from hsjp.training.progress import RunHeader, RunProgressBar, quiet_lightning
from hsjp.training.provenance import RecordProvenance, read_provenance

MONITOR = {"pose": "val/AP", "jigsaw": "val/placement_acc", "jigsaw_cls": "val/permutation_acc"}
#: The pretext's exported weights, the file ``model.init`` takes: backbone and (HSJP) heatmap head.
PRETRAINED_FILE = "network.safetensors"


def keep_earlier_logs(out: Path) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv; on resume, keep it as a numbered part."""
    current = out / "logs" / "metrics.csv"
    if current.is_file():
        part = len(list(current.parent.glob("metrics-part*.csv")))
        current.rename(current.with_name(f"metrics-part{part}.csv"))


def check_settings(cfg: Config) -> None:
    """Refuse what can be refused from the config alone: the settings torch or Lightning would reject
    from inside ``fit`` (a traceback, after the run folder is written) and those that would train
    nothing and report it as a result. Cheap (no data, no model), so an experiment checks every run it
    plans before its first hour of training."""
    on_cuda = runs_on_cuda(cfg)
    resolve_precision(cfg.trainer.precision, on_cuda)
    check_crop_settings(cfg)
    if cfg.trainer.sync_batchnorm and not on_cuda:
        raise ConfigError("trainer.sync_batchnorm=true needs GPUs: PyTorch's SyncBatchNorm has no CPU implementation")
    t, d = cfg.train, cfg.data
    for bad, problem in (
            (t.epochs < 1, f"train.epochs={t.epochs} must be >= 1"),
            (t.max_steps == 0 or t.max_steps < -1, f"train.max_steps={t.max_steps} must be -1 (no limit) or >= 1"),
            (not t.lr > 0, f"train.lr={t.lr} must be > 0"),
            (not t.weight_decay >= 0, f"train.weight_decay={t.weight_decay} must be >= 0"),
            (not t.gamma > 0, f"train.gamma={t.gamma} must be > 0"),
            (d.batch_size < 1, f"data.batch_size={d.batch_size} must be >= 1"),
            (d.val_batch_size < 1, f"data.val_batch_size={d.val_batch_size} must be >= 1"),
            (d.num_workers < 0, f"data.num_workers={d.num_workers} must be >= 0")):
        if bad:
            raise ConfigError(problem)


def build_trainer(cfg: Config, out: Path, has_val: bool, name: str = "train", resumed_step: int = 0,
                  extra_callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    t, tr = cfg.train, cfg.trainer
    quiet_lightning()
    keep_earlier_logs(out)
    ckpt_dir = out / "checkpoints"
    callbacks: list = [
        *last_checkpoint_callbacks(ckpt_dir, t.checkpoint_every_n_steps),
        StopOnSigterm(ckpt_dir),
        LearningRateMonitor(logging_interval="epoch"),
        RunHeader(name, resumed_step),
        *extra_callbacks,
    ]
    if tr.progress_bar:
        callbacks.append(RunProgressBar(name))
    if has_val:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=MONITOR[cfg.task], mode="max", save_top_k=1))
    try:
        return L.Trainer(
            default_root_dir=out,
            max_epochs=t.epochs,
            max_steps=t.max_steps,
            accelerator=tr.accelerator,
            devices=tr.devices,
            num_nodes=tr.num_nodes,
            strategy=tr.strategy,
            precision=tr.precision,
            sync_batchnorm=tr.sync_batchnorm,
            logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="tensorboard", version="")],
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            check_val_every_n_epoch=max(1, t.val_every_n_epochs),
            limit_train_batches=t.limit_train_batches,
            limit_val_batches=t.limit_val_batches,
            log_every_n_steps=tr.log_every_n_steps,
            enable_progress_bar=tr.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,  # CropDataModule builds its own (see its _loader)
        )
    except (MisconfigurationException, ValueError) as e:
        # Lightning checks accelerator, devices, strategy and nodes as it builds the Trainer; its message
        # says what is wrong, the settings say where a user sets it
        settings = f"accelerator={tr.accelerator}, devices={tr.devices}, strategy={tr.strategy}, num_nodes={tr.num_nodes}"
        raise ConfigError(f"trainer settings ({settings}): {str(e).splitlines()[0]}") from None


class ValidationAfterFit(Callback):
    """What ``train``'s validation after fit needs: the global step at which fit last validated, so
    that the same weights are not validated twice (a second pass costs a validation's time and
    logged a duplicate curve point), and, when it does run, its row on fit's axes. Lightning logs a
    validation inside fit at step ``global_step - 1`` and epoch ``current_epoch`` (the index of the
    epoch just trained), one outside fit at ``global_step`` and the epoch count, one past both (a
    6-step run's final validation read as step 7)."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            # Lightning's logger connector takes a logged "step" as the row's step, and then leaves "epoch" to us
            pl_module.log("step", float(trainer.global_step - 1))
            pl_module.log("epoch", float(trainer.current_epoch - 1))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.step = trainer.global_step


def train(cfg: Config, out: str | Path, name: str | None = None, callbacks: Sequence[L.Callback] = ()) -> dict:
    """Fit, validate the final weights unless fit's last validation already did, and write the run's
    outputs; returns the final metrics.

    ``name`` heads the run's one line of output and its progress bar; ``callbacks`` join the run's
    own (a benchmark's throughput meter, say) without a second copy of the trainer's set-up.
    """
    out = Path(out)
    on_cuda = runs_on_cuda(cfg)
    cfg = replace(cfg, trainer=replace(cfg.trainer, precision=resolve_precision(cfg.trainer.precision, on_cuda)))
    if warning := slow_precision_warning(cfg.trainer.precision, on_cuda):
        print(warning, file=sys.stderr)
    check_settings(cfg)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    dm = CropDataModule(cfg)
    module = module_for(cfg, dm.num_outputs, dm.flip_pairs)
    for report in getattr(module.model, "load_report", []):
        print(f"init weights: {report.summary()}")
    has_val = bool(cfg.data.val_ann)
    last = out / "checkpoints" / "last.ckpt"
    resume = str(last) if cfg.train.resume and last.is_file() else None
    step = check_resumable(last, cfg, dm.num_outputs) if resume else 0
    validated = ValidationAfterFit()
    trainer = build_trainer(cfg, out, has_val, name or ("finetune" if cfg.task == "pose" else f"pretrain {cfg.task}"), step,
                            [*callbacks, validated, RecordProvenance(out, step)])
    if trainer.is_global_zero:
        save_config(cfg, out / "config.yaml")
        remove_stale_temporaries(last.parent)
    try:
        # weights_only: a checkpoint carrying pickled code is refused, not run (torch >= 2.6's default, made explicit)
        trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
        metrics = {"global_step": int(trainer.global_step), "epochs": int(trainer.current_epoch)}
        if has_val:
            if validated.step != trainer.global_step:  # a re-run of a finished run, or a last epoch not validated
                trainer.validate(module, datamodule=dm, verbose=False)
            metrics.update({k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items()
                            if k.startswith("val/")})
    except TrainingError as e:
        raise TrainingError(f"{e}; {_kept(last)}") from None
    except SIGTERMException:  # Lightning's SystemExit without a code: uncaught, the process would exit 0
        raise Interrupted(f"{out}: stopped by SIGTERM at step {trainer.global_step}; {_kept(last)}; "
                          "run the same command again to resume", main_process=trainer.is_global_zero) from None
    if trainer.is_global_zero:
        write_outputs(cfg, module, out, metrics)
    return metrics


def _kept(last: Path) -> str:
    if not last.is_file():
        return "no checkpoint was saved before it"
    return f"kept {last} from step {read_checkpoint(last, mmap=True)['global_step']}"


#: A pretext whose held-out accuracy is below this multiple of chance has not learned (the classification
#: jigsaw on a 4x3 grid stayed at 1.0-1.1x for 3,000 steps; HSJP's 4x3 pretext was at 1.4x after 436 steps
#: and 2.6x after 873, RESULTS 13).
AT_CHANCE = 1.25


def write_outputs(cfg: Config, module: HeatmapModule, out: Path, metrics: dict) -> None:
    from hsjp.viz import plot_learning_curves

    if cfg.task in PRETEXT_TASKS:
        export_network(module.model, out / PRETRAINED_FILE, {
            "architecture": cfg.model.arch, "task": cfg.task, "grid": list(cfg.jigsaw.grid),
            "input_size": list(cfg.data.input_size), "epochs": metrics["epochs"], "global_step": metrics["global_step"],
            "data": cfg.data.train_ann or cfg.data.train_image_folder, "hsjp_config": to_dict(cfg),
            "provenance": read_provenance(out),  # weights travel without their run folder
        }, with_head=cfg.task == "jigsaw")
        acc = "placement_acc" if cfg.task == "jigsaw" else "permutation_acc"
        chance = 1 / module.model.num_outputs
        atomic_write_json(out / "pretext_metrics.json", {**metrics, f"chance_{acc}": chance})
        if metrics.get(acc, 1.0) < AT_CHANCE * chance:
            print(f"warning: {out}: held-out {acc} {100 * metrics[acc]:.1f} % is at chance ({100 * chance:.1f} %): "
                  "the pretext has not learned, so its weights are no better than a random init; train longer or "
                  "use a smaller jigsaw.grid", file=sys.stderr)
    else:
        atomic_write_json(out / "metrics.json", metrics)
    if (out / "logs").is_dir():
        plot_learning_curves(out / "logs", out / "curves.png", title=f"{cfg.task} {cfg.model.arch}")
