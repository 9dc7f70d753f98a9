"""DDP over two CPU processes (gloo) follows one process of the same global batch.

PyTorch's SyncBatchNorm has no CPU implementation, so here BatchNorm is kept on its running
statistics (``model.norm_eval``): each sample's output then no longer depends on which other
samples share its batch, and the one remaining difference between one process with a batch of 8
and two with 4 each is what DDP must get right, averaging gradients across processes. The
gradient is read from Adam's first moment after one step (exp_avg = 0.1 x gradient), since Adam's
sign-like first update would amplify float noise in the weights themselves.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import process_group, run_process, wait_for_file
from hsjp.config import load_config
from hsjp.errors import ConfigError
from hsjp.training.run import train


def _gradient(out, overrides, devices, batch, *extra):
    cmd = [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "cpu_r18_128x96", "--out", str(out),
           *overrides, "data.val_ann=''", "augment.enabled=false", "data.shuffle=false", "model.norm_eval=true",
           "train.max_steps=1", f"data.batch_size={batch}", f"trainer.devices={devices}",
           f"trainer.strategy={'ddp' if devices > 1 else 'auto'}", "trainer.num_threads=1", *extra]
    proc = run_process(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
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


def _finetune_cmd(out, overrides, devices, *extra):
    return [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "cpu_r18_128x96", "--out", str(out), *overrides,
            "data.shuffle=false", "model.norm_eval=true", f"trainer.devices={devices}",
            f"trainer.strategy={'ddp' if devices > 1 else 'auto'}", "trainer.num_threads=1", *extra]


def _finetune(out, overrides, devices, *extra):
    return run_process(_finetune_cmd(out, overrides, devices, *extra), env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_process_validation_scores_each_person_once(tmp_path, synthetic, tiny_overrides):
    """Validation on 2 processes gives 1 process's metrics, though the sampler pads an odd count with repeats."""
    assert len(json.loads(synthetic["val_ann"].read_text())["annotations"]) % 2 == 1  # so padding happens
    one = tmp_path / "one"
    proc = _finetune(one, tiny_overrides, 1, "train.epochs=1", "train.limit_train_batches=3", "train.lr=3e-3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = tmp_path / "two"
    shutil.copytree(one, two)
    # resuming the finished run: no training step, the final validation runs on 2 processes with the same weights
    proc = _finetune(two, tiny_overrides, 2, "train.epochs=1", "train.limit_train_batches=3", "train.lr=3e-3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m1, m2 = (json.loads((run / "metrics.json").read_text()) for run in (one, two))
    assert m2["global_step"] == m1["global_step"] == 3
    assert m1["PCK@0.1"] > 0  # so that equality below says something
    assert {k: m2[k] for k in ("AP", "AR", "PCK@0.1")} == {k: m1[k] for k in ("AP", "AR", "PCK@0.1")}


def test_skipped_image_limit_counts_each_process_share(tmp_path, synthetic, tiny_overrides):
    """Each process sees half the persons, so its limit is a share of half: 1 failure in 25 is over 3%."""
    images = tmp_path / "images"
    shutil.copytree(synthetic["train_images"], images)
    coco = json.loads(synthetic["train_ann"].read_text())
    order = [a["image_id"] for a in coco["annotations"]]
    # two one-person images whose persons go to different processes (DistributedSampler deals i to rank i % 2)
    lone = [i for i in order if order.count(i) == 1]
    chosen = [next(i for i in lone if order.index(i) % 2 == rank) for rank in (0, 1)]
    for image in coco["images"]:
        if image["id"] in chosen:
            (images / image["file_name"]).write_bytes(b"corrupt")
    n = len(order)
    proc = _finetune(tmp_path / "run", tiny_overrides, 2, f"data.train_images={images}", "data.val_ann=",
                     "train.max_skipped_fraction=0.03", "train.max_steps=2")
    # 1 failure in the whole data set's 49 persons would be within 3%, but it is 1 in this process's 25
    assert 1 <= 0.03 * n and 1 > 0.03 * math.ceil(n / 2)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"1 of {math.ceil(n / 2)} training images (this process's share) failed to load (more than 3%)" in proc.stderr


@pytest.mark.parametrize("signalled", ["every process", "the other rank only"])
def test_sigterm_stops_both_ranks_at_one_step_saves_it_and_resumes(tmp_path, tiny_overrides, signalled):
    """A scheduler signals every process of a job, or one: either way both ranks stop at the same step.

    With Lightning's own SIGTERM handling both cases hung (one rank in a checkpoint barrier, the other
    gone) until the scheduler's SIGKILL.
    """
    out, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    long_run = ["data.val_ann=", "train.epochs=1000", "train.milestones=[900]"]
    with process_group(_finetune_cmd(out, tiny_overrides, 2, *long_run), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"}) as proc:
        wait_for_file(proc, last, 300)  # the first checkpoint: both ranks are training
        if signalled == "every process":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            (child,) = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            os.kill(int(child), signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    step = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"]
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.count("stopped by SIGTERM") == 1  # the main process reports, the other rank stops quietly
    assert f"hsjp: {out}: stopped by SIGTERM at step {step}; kept {last} from step {step}; run the same command " \
           "again to resume\n" in err
    again = _finetune(out, tiny_overrides, 2, *long_run, f"train.max_steps={step + 2}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming at step {step}" in again.stdout
    assert json.loads((out / "metrics.json").read_text())["global_step"] == step + 2


#: Runs the CLI with a callback that sends SIGTERM to rank 1 alone during the validation after fit.
#: A script, not ``-m``: Lightning starts the other rank by re-running ``sys.argv``, callback included.
SIGTERM_IN_FINAL_VALIDATION = """
import os, signal, sys
from lightning.pytorch.callbacks import Callback
from hsjp.cli import main
from hsjp.training import run

class SigtermOnRank1(Callback):
    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if trainer.state.fn == "validate" and trainer.global_rank == 1 and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGTERM)

build = run.build_trainer
def with_callback(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.callbacks.append(SigtermOnRank1())
    return trainer
run.build_trainer = with_callback
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_the_validation_after_fit_stops_both_ranks_and_the_rerun_validates(tmp_path, tiny_overrides):
    """The validation after fit is a trainer entry of its own, where Lightning's handler is set again:
    it broadcast from inside the handler of the one rank signalled."""
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(SIGTERM_IN_FINAL_VALIDATION))
    out, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = _finetune_cmd(out, tiny_overrides, 2, "train.max_steps=2", "data.val_batch_size=2")[3:]  # after "-m hsjp.cli"
    with process_group([sys.executable, str(driver), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}) as proc:
        err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert f"hsjp: {out}: stopped by SIGTERM at step 2; kept {last} from step 2; run the same command again to " \
           "resume\n" in err and err.count("stopped by SIGTERM") == 1
    assert not (out / "metrics.json").exists()
    again = _finetune(out, tiny_overrides, 2, "train.max_steps=2", "data.val_batch_size=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
