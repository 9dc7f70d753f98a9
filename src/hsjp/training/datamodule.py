"""Lightning data module: which person crops feed a run, and with which target.

Annotation files are read and validated once, in the process that builds the module, before any
worker starts, so that every data error is reported there with its file and record.
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
from dataclasses import replace
from functools import cached_property, partial

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, DistributedSampler

from hsjp.codecs import heatmap_codec, jigsaw_codec
from hsjp.config import PRETEXT_TASKS, TASKS, Config
from hsjp.data.annotations import KeypointAnnotations, PersonRecord, folder_persons, load_annotations
from hsjp.data.crops import CropGeometry, PersonCrops, collate_skipping
from hsjp.data.targets import KeypointTarget, PuzzleClassTarget, PuzzleTarget
from hsjp.errors import ConfigError, DataError


def runs_on_cuda(cfg: Config) -> bool:
    """Whether the run's Trainer will place it on CUDA GPUs ('auto' takes them where present)."""
    return cfg.trainer.accelerator != "cpu" and torch.cuda.is_available()


def init_worker(worker_id: int, rank: int) -> None:
    """Seed a loader worker as Lightning does, and leave SIGTERM to the main process.

    A scheduler or ``kill`` signals the whole process group. PyTorch's workers die of it, and the
    main process then fails mid-step with "DataLoader worker ... is killed by signal". Ignoring it
    here lets the run stop at the end of the step and save it there (``StopOnSigterm``);
    the main process still shuts its workers down, and a worker whose parent dies exits by itself.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pl_worker_init_function(worker_id, rank=rank)


@atexit.register  # after multiprocessing's own exit hook (torch imports it first), so it runs before it
def _end_daemons_at_exit(grace: float = 1.0) -> None:
    """End daemonic children still alive at interpreter exit, the loader workers that ignore SIGTERM too.

    multiprocessing ends them with SIGTERM, which ``init_worker`` makes loader workers ignore, and
    then waits for them forever: a run whose persistent loader something still held at exit never
    exited (seen after a SIGTERM stop). Here each gets the same SIGTERM first, then SIGKILL.
    """
    daemons = [p for p in multiprocessing.active_children() if p.daemon]
    for process in daemons:
        process.terminate()
    for process in daemons:
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()


def label_subset(records: list[PersonRecord], fraction: float, seed: int) -> list[PersonRecord]:
    """A seeded random share of the labelled persons (the label-budget axis)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"data.label_fraction must be in (0, 1], not {fraction}")
    if fraction == 1:
        return records
    n = max(1, round(fraction * len(records)))
    idx = np.sort(np.random.default_rng(seed).choice(len(records), n, replace=False))
    return [records[i] for i in idx]


def check_crop_settings(cfg: Config) -> None:
    """The task and crop size, refused before any file is read."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, not {cfg.task!r}")
    if len(cfg.data.input_size) != 2 or any(v <= 0 or v % 32 for v in cfg.data.input_size):
        raise ConfigError(f"data.input_size {list(cfg.data.input_size)} (w, h): both sides must be positive "
                          "multiples of 32, the networks' deepest stride")


class CropDataModule(L.LightningDataModule):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        check_crop_settings(cfg)
        self.geometry = CropGeometry.from_config(cfg.data)

    @cached_property
    def train_annotations(self) -> KeypointAnnotations | None:
        d = self.cfg.data
        if self.cfg.task in PRETEXT_TASKS and d.train_image_folder:
            return None
        if not d.train_ann:
            raise ConfigError("data.train_ann is empty: name a COCO keypoint file (or data.train_image_folder for pretraining)")
        return load_annotations(d.train_ann, d.train_images, purpose="train")

    @cached_property
    def val_annotations(self) -> KeypointAnnotations | None:
        d = self.cfg.data
        return load_annotations(d.val_ann, d.val_images) if d.val_ann else None

    @property
    def num_outputs(self) -> int:
        if self.cfg.task == "jigsaw":
            return jigsaw_codec(self.cfg).num_patches
        if self.cfg.task == "jigsaw_cls":
            return len(jigsaw_codec(self.cfg).permutation_table)
        return self.train_annotations.num_keypoints

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        anns = self.train_annotations or self.val_annotations
        return anns.flip_pairs if anns is not None else []

    def state_dict(self) -> dict:
        """Saved by Lightning in every checkpoint: a pose model's keypoint names and skeleton, so that
        ``hsjp predict`` and :class:`hsjp.PoseEstimator` can name and draw them without the annotation file."""
        anns = (self.train_annotations or self.val_annotations) if self.cfg.task == "pose" else None
        return {"keypoint_names": list(anns.keypoint_names), "skeleton": anns.skeleton} if anns is not None else {}

    def _target(self):
        if self.cfg.task == "pose":
            return KeypointTarget(heatmap_codec(self.cfg))
        target = PuzzleTarget if self.cfg.task == "jigsaw" else PuzzleClassTarget
        return target(jigsaw_codec(self.cfg))

    def _records(self, anns: KeypointAnnotations) -> list[PersonRecord]:
        if self.cfg.task == "pose":
            return anns.persons(require_keypoints=True)
        # pretraining uses no labels: the keypoints are dropped, so no augmentation (half-body) can read them
        m = self.cfg.data.min_box_size
        return [replace(r, keypoints=np.zeros((0, 3), np.float32))
                for r in anns.persons(require_keypoints=False) if min(r.bbox[2], r.bbox[3]) >= m]

    def setup(self, stage: str | None = None) -> None:
        anns = self.train_annotations
        if anns is None:
            records = folder_persons(self.cfg.data.train_image_folder)
        else:
            records = self._records(anns)
            if self.cfg.task == "pose":
                records = label_subset(records, self.cfg.data.label_fraction, self.cfg.train.seed)
                if anns.num_keypoints != self.num_outputs:
                    raise DataError(f"{anns.path}: {anns.num_keypoints} keypoints, the model predicts {self.num_outputs}")
        if not records:
            raise DataError(f"{self.cfg.data.train_ann or self.cfg.data.train_image_folder}: no usable person for training")
        upper = anns.upper_body_ids if anns is not None else []
        self.train_set = PersonCrops(records, self.geometry, self._target(), self.cfg.augment, self.flip_pairs, upper)
        self.val_set = None
        if self.val_annotations is not None:
            val_anns = self.val_annotations
            if self.cfg.task == "pose" and val_anns.num_keypoints != self.num_outputs:
                raise DataError(f"{val_anns.path}: {val_anns.num_keypoints} keypoints, training data has {self.num_outputs}")
            self.val_set = PersonCrops(self._records(val_anns), self.geometry, self._target(),
                                       None, val_anns.flip_pairs, deterministic=True, seed=self.cfg.train.seed)

    def _loader(self, dataset, batch_size: int, train: bool) -> DataLoader:
        """Loader with its own DistributedSampler under DDP, and its own seeded random generator.

        Lightning's automatic sampler always shuffles training data; building it here keeps
        ``data.shuffle=false`` meaning what it says on any number of processes. Without a generator
        of its own a loader draws its shuffle and its workers' seeds from the global RNG, which every
        other loader's iteration draws from too: how often a run validated changed what it trained.
        """
        workers = self.cfg.data.num_workers
        shuffle = train and self.cfg.data.shuffle
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=self.cfg.train.seed)
            shuffle = False
        per_process = len(sampler) if sampler is not None else len(dataset)
        rank = sampler.rank if sampler is not None else 0
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                          drop_last=train and per_process > batch_size, num_workers=workers,
                          persistent_workers=workers > 0, collate_fn=collate_skipping,
                          worker_init_fn=partial(init_worker, rank=rank) if workers > 0 else None,
                          generator=torch.Generator().manual_seed(self.cfg.train.seed),
                          pin_memory=runs_on_cuda(self.cfg))  # page-locked batches copy to a GPU asynchronously

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.cfg.data.batch_size, True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return self._loader(self.val_set, self.cfg.data.val_batch_size, False)
