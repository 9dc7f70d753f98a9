"""A run killed at any moment resumes; what it cannot resume, or cannot trust, stops it in one line."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from helpers import process_group, run_process, wait_for_file
from hsjp.cli import main
from hsjp.config import load_config
from hsjp.errors import CheckpointError, TrainingError
from hsjp.training.run import train

STEPS_PER_EPOCH = 4


def _finetune_cmd(out, overrides, *extra):
    return [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "cpu_r18_128x96", "--out", str(out), *overrides,
            f"train.limit_train_batches={STEPS_PER_EPOCH}", "train.checkpoint_every_n_steps=2",
            "train.val_every_n_epochs=2", "trainer.num_threads=1", *extra]


def _step(path):
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"]


def _add_callback(monkeypatch, callback):
    """Every trainer ``train`` builds from now on also runs ``callback``: for the CLI, which takes none."""
    from hsjp.training import run

    build = run.build_trainer

    def with_callback(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(run, "build_trainer", with_callback)


def test_sigkill_mid_epoch_then_rerun_resumes_from_the_step_checkpoint(tmp_path, tiny_overrides):
    out = tmp_path / "run"
    cmd = _finetune_cmd(out, tiny_overrides)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = out / "checkpoints" / "last.ckpt"
    with process_group(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) as proc:
        wait_for_file(proc, last, 120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    step = _step(last)
    assert step % STEPS_PER_EPOCH != 0, f"killed at step {step}: not mid-epoch, the test proves less"
    assert not (out / "metrics.json").exists()
    # a save the kill interrupted leaves its temp file (atomic_write_bytes's name): the re-run clears it
    (out / "checkpoints" / ".last.ckpt.interrupted.tmp").write_bytes(b"half a checkpoint")

    again = run_process(cmd, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"finetune: {2 * STEPS_PER_EPOCH} steps, resuming at step {step} (mid-epoch" in again.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 2 * STEPS_PER_EPOCH and 0 <= metrics["AP"] <= 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert _step(last) == 2 * STEPS_PER_EPOCH
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_sigterm_to_the_run_and_its_workers_saves_where_it_stopped_and_exits_143(tmp_path, tiny_overrides,
                                                                                   monkeypatch, capsys):
    """What a scheduler's time limit does: SIGTERM to the whole process group, loader workers included."""
    import multiprocessing

    from lightning.pytorch.callbacks import Callback

    class SigtermInStep3(Callback):
        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == 2:  # two steps done: the signal arrives during the third
                workers = [str(p.pid) for p in multiprocessing.active_children()]
                assert workers, "no loader workers: the test would not show that they survive a SIGTERM"
                # from another process, as a scheduler sends it: PyTorch's workers exit quietly on their parent's
                subprocess.run(["kill", "-TERM", str(os.getpid()), *workers], check=True)

    out = tmp_path / "run"
    argv = ["finetune", "--config", "cpu_r18_128x96", "--out", str(out), *tiny_overrides, "data.val_ann=",
            "data.num_workers=2", f"train.limit_train_batches={STEPS_PER_EPOCH}", "train.checkpoint_every_n_steps=0"]
    with monkeypatch.context() as m:
        _add_callback(m, SigtermInStep3())
        assert main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    last = out / "checkpoints" / "last.ckpt"
    assert err == f"hsjp: {out}: stopped by SIGTERM at step 3; kept {last} from step 3; run the same command again " \
                  "to resume\n"
    assert _step(last) == 3  # mid-epoch with step checkpoints off: only the SIGTERM save can have written it
    assert not (out / "metrics.json").exists()

    assert main(argv) == 0
    assert "resuming at step 3 (mid-epoch" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2 * STEPS_PER_EPOCH


def test_sigterm_in_an_epochs_last_step_still_validates_that_epoch(tmp_path, tiny_overrides):
    """Stopped on the step that ends a validated epoch, the run validates that epoch before it exits:
    Lightning resumes a checkpoint saved at an epoch's last step in the next epoch, so a stop there
    would lose the epoch's validation (and ``best.ckpt``'s chance to see it) for good."""
    from lightning.pytorch.callbacks import Callback

    from hsjp.errors import Interrupted
    from hsjp.viz import read_metrics_csv

    class SigtermInEpochsLastStep(Callback):
        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == STEPS_PER_EPOCH - 1:
                os.kill(os.getpid(), signal.SIGTERM)

    cfg = load_config(None, [*tiny_overrides, f"train.limit_train_batches={STEPS_PER_EPOCH}", "train.val_every_n_epochs=1",
                             "train.checkpoint_every_n_steps=0"])
    with pytest.raises(Interrupted, match=f"stopped by SIGTERM at step {STEPS_PER_EPOCH};"):
        train(cfg, tmp_path, callbacks=[SigtermInEpochsLastStep()])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert _step(last) == STEPS_PER_EPOCH
    assert train(cfg, tmp_path)["global_step"] == 2 * STEPS_PER_EPOCH
    train(cfg, tmp_path / "never_stopped")

    def validated(out):
        return [x for x, _ in read_metrics_csv(out / "logs", val_x="step")["val/AP"]]

    assert validated(tmp_path) == validated(tmp_path / "never_stopped")
    assert validated(tmp_path) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]  # each epoch's once


def test_step_checkpoints_are_written_between_epoch_ends(tmp_path, tiny_overrides):
    """What the kill test relies on, in-process: last.ckpt is written every 2 steps, not only at epoch ends."""
    from lightning.pytorch.callbacks import Callback

    seen = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, *_):
            path = tmp_path / "checkpoints" / "last.ckpt"
            seen.append(_step(path) if path.is_file() else None)

    train(load_config(None, [*tiny_overrides, "train.epochs=1", f"train.limit_train_batches={STEPS_PER_EPOCH}",
                             "train.checkpoint_every_n_steps=2", "data.val_ann="]), tmp_path, callbacks=[Record()])
    assert seen == [None, None, 2, 2]


def test_resuming_another_architecture_or_task_is_one_line(tmp_path, tiny_overrides, capsys):
    train(load_config(None, [*tiny_overrides, "train.epochs=1", "train.limit_train_batches=1", "data.val_ann="]), tmp_path)
    with pytest.raises(CheckpointError, match=r"cannot resume a pose test_resnet with \d+ outputs run as a pose resnet34"):
        train(load_config(None, [*tiny_overrides, "model.arch=resnet34", "data.val_ann="]), tmp_path)
    args = ["pretrain", "--config", "hsjp_cpu_r18_128x96", "--out", str(tmp_path), *tiny_overrides, "jigsaw.grid=[2,2]"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsjp: error: ") and "as a jigsaw test_resnet with 4 outputs run" in err and err.count("\n") == 1


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    from hsjp.training.modules import HeatmapModule

    real = HeatmapModule.loss
    calls = []

    def poisoned(self, pred, batch):  # the 4th step's loss is NaN
        calls.append(1)
        loss = real(self, pred, batch)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(HeatmapModule, "loss", poisoned)
    cfg = load_config(None, [*tiny_overrides, "train.epochs=1", f"train.limit_train_batches={STEPS_PER_EPOCH}",
                             "train.checkpoint_every_n_steps=2", "data.val_ann="])
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(TrainingError, match=rf"non-finite training loss \(nan\) at step 4 \(epoch 0, batch 3\); "
                                            rf"that step was not applied; kept {last} from step 2$"):
        train(cfg, tmp_path)
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "metrics.json").exists()


class _Payload:
    """Unpickling this runs ``touch MARKER`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_carrying_pickled_code_is_refused_by_every_loading_path(tmp_path, synthetic, tiny_overrides, capsys):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"cfg": _Payload(marker)}, "global_step": 1}, evil)
    resumed = tmp_path / "resumed" / "checkpoints"
    resumed.mkdir(parents=True)
    (resumed / "last.ckpt").write_bytes(evil.read_bytes())
    finetune = ["finetune", "--config", "cpu_r18_128x96", *tiny_overrides]
    paths = {
        "--init": [*finetune, "--out", str(tmp_path / "init"), "--init", str(evil)],
        "--ckpt": ["evaluate", "--ckpt", str(evil), "--ann", str(synthetic["val_ann"]),
                   "--images", str(synthetic["val_images"]), "--out", str(tmp_path / "eval")],
        "resume": [*finetune, "--out", str(tmp_path / "resumed")],
    }
    for name, argv in paths.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("hsjp: error: ") and err.count("\n") == 1, (name, err)
        assert "Weights only load failed" in err, (name, err)
        assert not marker.exists(), f"{name}: the payload ran"
    # the control: the same file, loaded the unsafe way, does run its code
    torch.load(evil, weights_only=False)
    assert marker.exists()
