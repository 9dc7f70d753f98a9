"""DDP over two CPU processes (gloo) follows one process of the same global batch.

PyTorch's SyncBatchNorm has no CPU implementation, so here BatchNorm is kept on its running
statistics (``model.norm_eval``): each sample's output then no longer depends on which other
samples share its batch, and the one remaining difference between one process with a batch of 8
and two with 4 each is what DDP must get right, averaging gradients across processes. The
gradient is read from Adam's first moment after one step (exp_avg = 0.1 x gradient), since Adam's
sign-like first update would amplify float noise in the weights themselves.
"""

import os
import subprocess
import sys

import pytest
import torch

from hsjp.config import load_config
from hsjp.errors import ConfigError
from hsjp.training.run import train


def _gradient(out, overrides, devices, batch, *extra):
    cmd = [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "cpu_r18_128x96", "--out", str(out),
           *overrides, "data.val_ann=''", "augment.enabled=false", "data.shuffle=false", "model.norm_eval=true",
           "train.max_steps=1", f"data.batch_size={batch}", f"trainer.devices={devices}",
           f"trainer.strategy={'ddp' if devices > 1 else 'auto'}", "trainer.num_threads=1", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1
    state = ckpt["optimizer_states"][0]["state"]
    return torch.cat([state[i]["exp_avg"].flatten() for i in sorted(state)])


def _relative(a, b):
    return ((a - b).norm() / a.norm()).item()


def test_two_process_ddp_matches_one_process(tmp_path, tiny_overrides):
    one = _gradient(tmp_path / "one", tiny_overrides, devices=1, batch=8)
    two = _gradient(tmp_path / "two", tiny_overrides, devices=2, batch=4)
    # control: one process on half the global batch (persons 0-3) follows a different gradient
    half = _gradient(tmp_path / "half", tiny_overrides, devices=1, batch=4)
    assert _relative(one, two) < 1e-4
    assert _relative(one, half) > 1e-2  # so the agreement above is not trivial


def test_sync_batchnorm_on_cpu_is_refused_clearly(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "trainer.sync_batchnorm=true", "trainer.accelerator=cpu"])
    with pytest.raises(ConfigError, match="SyncBatchNorm"):
        train(cfg, tmp_path)
