"""Shared fixtures: the real data beside the project (skipped when absent) and a generated dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# keep test runs small and quiet on a 2-core machine
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    """A small generated COCO-format dataset, made once per test session."""
    from hsjp.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synthetic"), n_train=24, n_val=8, image_size=(160, 128), seed=0)


@pytest.fixture(scope="session")
def tiny_overrides(synthetic) -> list[str]:
    """Config overrides for a seconds-long CPU run on the generated data."""
    return [
        # timm's tiny ResNet and narrow deconvolutions: a run's checkpoint is ~5.5 MB, not ~185 (CI's disk is small)
        "model.arch=test_resnet",
        "model.deconv_channels=32",
        f"data.train_ann={synthetic['train_ann']}",
        f"data.train_images={synthetic['train_images']}",
        f"data.val_ann={synthetic['val_ann']}",
        f"data.val_images={synthetic['val_images']}",
        "data.input_size=[64,64]",
        "data.batch_size=8",
        "data.val_batch_size=16",
        "data.num_workers=0",
        "train.epochs=2",
        "train.milestones=[1]",
        "train.val_every_n_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1",
        "trainer.precision=32-true",
        "train.channels_last=false",
    ]


@pytest.fixture(scope="session")
def pose_checkpoint(tmp_path_factory, tiny_overrides) -> Path:
    """A finetune checkpoint on the generated data (64x64 crops), for inference tests.

    Trained 60 steps at 3x the default rate so that its heatmaps have clear peaks: after 3 steps they held
    exact ties, which rounding differences (ONNX Runtime's, or oneDNN's between batch sizes: ~1e-9 there)
    break either way, moving a keypoint by a whole heatmap pixel. Now the smallest margin that decides a
    decoded keypoint is about 1e-4, ~1,000 times ONNX Runtime's difference; the ONNX test checks it.
    """
    from hsjp.config import load_config
    from hsjp.training.run import train

    out = tmp_path_factory.mktemp("pose_ckpt")
    train(load_config("cpu_r18_128x96", [*tiny_overrides, "train.epochs=20", "train.limit_train_batches=3",
                                         "train.lr=0.003", "data.val_ann="]), out)
    return out / "checkpoints" / "last.ckpt"
