import sys

import numpy as np

from helpers import run_process
from hsjp.config import load_config
from hsjp.training.datamodule import CropDataModule


def test_pretext_crops_carry_no_keypoint_labels(tiny_overrides):
    """Pretraining uses no labels: not as targets, and not through label-driven augmentation (half-body)."""
    dm = CropDataModule(load_config(None, [*tiny_overrides, "task=jigsaw", "jigsaw.grid=[2,2]",
                                           "augment.half_body_prob=1.0"]))
    dm.setup("fit")
    assert all(r.keypoints.shape == (0, 3) for r in dm.train_set.records + dm.val_set.records)
    assert len(dm.train_set.records) >= len(dm.train_annotations.persons(require_keypoints=True))
    sample = dm.train_set[0]
    assert sample["heatmaps"].shape[0] == 4 and np.isfinite(sample["heatmaps"]).all()


def test_pose_crops_keep_their_labels(tiny_overrides):
    dm = CropDataModule(load_config(None, tiny_overrides))
    dm.setup("fit")
    assert all(r.num_labelled > 0 for r in dm.train_set.records)


def test_a_process_holding_live_loader_workers_still_exits():
    """Workers ignore SIGTERM (so a scheduler's signal stops the run, not them), which is how
    multiprocessing ends them at exit: a process that still held a persistent loader hung there."""
    code = (
        "import functools\n"
        "from torch.utils.data import DataLoader\n"
        "from hsjp.training.datamodule import init_worker\n"
        "loader = DataLoader(list(range(64)), batch_size=4, num_workers=2, persistent_workers=True,\n"
        "                    worker_init_fn=functools.partial(init_worker, rank=0))\n"
        "held = iter(loader)\n"
        "next(held)\n"
    )
    proc = run_process([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
