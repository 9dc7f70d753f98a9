import numpy as np

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
