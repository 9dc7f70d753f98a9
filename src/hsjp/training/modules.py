"""Lightning modules: one heatmap-regression module, two ways of validating it.

Finetuning and the HSJP pretext share the network, loss, optimiser, schedule and the handling of
undecodable images; they differ only in what a validation pass measures (OKS AP vs. puzzle
placement accuracy).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from hsjp.codecs import heatmap_codec, jigsaw_codec
from hsjp.config import Config, from_dict, to_dict
from hsjp.errors import CheckpointError, DataError, TrainingError
from hsjp.evaluation.topdown import decode_batch, evaluate_predictions, predict_heatmaps
from hsjp.jigsaw import placement_accuracy, puzzle_accuracy
from hsjp.losses import HeatmapMSELoss
from hsjp.models import create_model
from hsjp.training.checkpoints import read_checkpoint


class HeatmapModule(L.LightningModule):
    def __init__(self, cfg: dict, num_outputs: int, flip_pairs: list | None = None):
        super().__init__()
        self.save_hyperparameters({"cfg": cfg, "num_outputs": num_outputs, "flip_pairs": flip_pairs or []})
        self.cfg: Config = from_dict(cfg)
        self.flip_pairs = [tuple(p) for p in (flip_pairs or [])]
        m = self.cfg.model
        head = "classifier" if self.cfg.task == "jigsaw_cls" else "heatmap"
        self.model = create_model(m.arch, num_outputs, m.init, m.deconv_channels, m.transfer, head)
        if self.cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # the classification jigsaw's loss is cross-entropy on the labels (its own ``loss``)
        self.loss_fn = HeatmapMSELoss(self.cfg.train.loss_pixel_reduction) if head == "heatmap" else None
        self.skipped_this_epoch = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _check_skipped(self, batch: dict) -> None:
        """Warn about each undecodable image; stop once more than the allowed share has failed."""
        for reason in batch["skipped"]:
            rank_zero_warn(f"skipped sample: {reason}")
        self.skipped_this_epoch += len(batch["skipped"])
        loader = self.trainer.train_dataloader if self.trainer is not None else None
        # each process counts only its own failures, so it compares them with its own share of the data
        total = len(loader.sampler) if loader is not None and hasattr(loader, "sampler") else 0
        limit = self.cfg.train.max_skipped_fraction
        if total and self.skipped_this_epoch > limit * total:
            last = batch["skipped"][-1] if batch["skipped"] else ""
            share = " (this process's share)" if self.trainer.world_size > 1 else ""
            raise DataError(f"{self.skipped_this_epoch} of {total} training images{share} failed to load "
                            f"(more than {100 * limit:g}%); last: {last}")

    def on_train_epoch_start(self) -> None:
        self.skipped_this_epoch = 0
        if self.cfg.model.norm_eval:  # Lightning keeps modes as they are, so set them each epoch
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def training_step(self, batch: dict, batch_idx: int):
        self._check_skipped(batch)
        if "image" not in batch:
            return None
        loss = self.loss(self(batch["image"]), batch)
        self._check_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop at the first non-finite loss, before its step touches the weights or a checkpoint.

        All processes decide together, so that none is left waiting in the gradient all-reduce.
        """
        finite = bool(torch.isfinite(loss.detach()))
        if not self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            value = "" if finite else f" ({loss.item():g})"
            raise TrainingError(f"non-finite training loss{value} at step {self.global_step + 1} "
                                f"(epoch {self.current_epoch}, batch {batch_idx}); that step was not applied")

    def loss(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        """The task's loss: heatmap MSE for pose and HSJP (the classification jigsaw overrides it)."""
        return self.loss_fn(pred, batch["heatmaps"], batch["weights"])

    def configure_optimizers(self):
        t = self.cfg.train
        opt = torch.optim.Adam(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(t.milestones), gamma=t.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    @classmethod
    def from_checkpoint(cls, path: str) -> "HeatmapModule":
        """Rebuild a trained module from its checkpoint alone (its init weights file need not exist)."""
        ckpt = read_checkpoint(path)
        try:
            hp, state = ckpt["hyper_parameters"], ckpt["state_dict"]
            cfg = dict(hp["cfg"])
        except (KeyError, TypeError):
            raise CheckpointError(f"{path}: not an hsjp training checkpoint (no hyper_parameters.cfg)") from None
        cfg["model"] = {**cfg["model"], "init": "scratch"}
        module_cls = TASK_MODULES.get(cfg.get("task"), PoseModule)
        if not issubclass(module_cls, cls):
            raise CheckpointError(f"{path}: a {cfg.get('task')} checkpoint, not a {cls.__name__}")
        module = module_cls(cfg, hp["num_outputs"], hp.get("flip_pairs"))
        load_exact(module, state, path)
        return module


def load_exact(module: torch.nn.Module, state: dict, path: str) -> None:
    """Load a full state dict, naming the mismatching keys instead of failing deep inside torch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        bits = [f"{n} {name}: {', '.join(keys[:3])}" for name, keys, n in
                (("missing", missing, len(missing)), ("unexpected", unexpected, len(unexpected)),
                 ("shape-mismatched", wrong, len(wrong))) if keys]
        raise CheckpointError(f"{path}: does not fit {getattr(module.model, 'arch', '?')} "
                              f"with {module.model.num_outputs} outputs; " + "; ".join(bits))
    module.load_state_dict(state)


def require_loaded(batch: dict) -> None:
    """Validation scores every held-out sample: one that failed to load is an error, not a skip."""
    if batch["skipped"]:
        raise DataError(f"validation image failed to load: {batch['skipped'][0]}")


class PoseModule(HeatmapModule):
    """Keypoint finetuning; validation decodes every ground-truth box and scores OKS AP."""

    def on_validation_epoch_start(self) -> None:
        self._preds: list[dict] = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        require_loaded(batch)
        heatmaps = predict_heatmaps(self, batch["image"], self.flip_pairs, self.cfg.train.flip_test)
        self._preds.extend(decode_batch(heatmaps, batch["meta"], heatmap_codec(self.cfg)))
        loss = self.loss(heatmaps, batch)
        self.log("val/loss", loss, batch_size=len(batch["image"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        preds = self._preds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, preds)
            preds = [p for part in gathered for p in part]
        anns = self.trainer.datamodule.val_annotations
        _, metrics = evaluate_predictions(preds, anns, self.cfg.data.oks_sigmas)
        self.log_dict({f"val/{k}": float(v) for k, v in metrics.items()})


class JigsawModule(HeatmapModule):
    """HSJP pretext; validation decodes each puzzle (Hungarian) and scores placement accuracy."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        require_loaded(batch)
        heatmaps = self(batch["image"])
        n = len(batch["image"])
        self.log("val/loss", self.loss(heatmaps, batch), batch_size=n, sync_dist=True)
        pred = jigsaw_codec(self.cfg).decode(heatmaps.float().cpu().numpy())
        true = batch["permutation"].cpu().numpy()
        self.log("val/placement_acc", placement_accuracy(pred, true), batch_size=n, sync_dist=True, prog_bar=True)
        self.log("val/puzzle_acc", puzzle_accuracy(pred, true), batch_size=n, sync_dist=True)


class JigsawClsModule(HeatmapModule):
    """The classification jigsaw (Noroozi & Favaro 2016), the baseline HSJP's heatmap labels replace.

    Same crops, grid, shuffling and backbone; the head pools the features and classifies which of
    the fixed set's permutations was applied (cross-entropy). Its placement accuracy (pieces of the
    predicted permutation that sit where they really are) is logged too, on HSJP's footing.
    """

    def loss(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(pred.float(), batch["label"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        require_loaded(batch)
        logits = self(batch["image"])
        n = len(batch["image"])
        self.log("val/loss", self.loss(logits, batch), batch_size=n, sync_dist=True)
        pred = logits.argmax(dim=1)
        self.log("val/permutation_acc", (pred == batch["label"]).float().mean(), batch_size=n, sync_dist=True,
                 prog_bar=True)
        table = torch.from_numpy(jigsaw_codec(self.cfg).permutation_table.copy()).to(pred.device)
        self.log("val/placement_acc", (table[pred] == batch["permutation"]).float().mean(), batch_size=n,
                 sync_dist=True)


TASK_MODULES: dict[str, type[HeatmapModule]] = {"pose": PoseModule, "jigsaw": JigsawModule, "jigsaw_cls": JigsawClsModule}


def module_for(cfg: Config, num_outputs: int, flip_pairs: list) -> HeatmapModule:
    return TASK_MODULES[cfg.task](to_dict(cfg), num_outputs, [list(p) for p in flip_pairs])
