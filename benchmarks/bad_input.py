"""Bad input, fed to the commands as a user would: what they see and the exit code (issue 11).

Every kind of broken file is made from a small generated dataset, each command runs as a separate
``python -m hsjp.cli`` process, and the first line it prints (the error, or the AP it reports) goes
into a markdown table. ``--before SRC`` also runs the ``score`` rows against another source tree
(e.g. ``git archive HEAD | tar -x -C /tmp/head``, then ``--before /tmp/head/src``) for comparison.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bad_input.py --out /tmp/bad-input [--before /tmp/head/src]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

NAN = float("nan")
TINY = ["model.arch=resnet18", "data.input_size=[64,64]", "data.batch_size=8", "data.val_batch_size=16",
        "data.num_workers=0", "train.epochs=1", "train.milestones=[1]", "train.limit_train_batches=2",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false", "trainer.precision=32-true",
        "train.channels_last=false"]


def first_annotation(change: Callable[[dict], object]) -> Callable[[dict], None]:
    return lambda d: change(d["annotations"][0])


GROUND_TRUTH = {  # kind -> how the val file is broken
    "annotation file is not JSON": None,
    "top level is a list": lambda d: d.update(_replace=[1, 2]),
    "no 'annotations' list": lambda d: d.pop("annotations"),
    "no category lists keypoints": lambda d: d["categories"][0].pop("keypoints"),
    "two keypoint categories, neither 'person'": lambda d: (d["categories"][0].update(name="human"),
                                                            d["categories"].append({"id": 2, "keypoints": ["a"]})),
    "annotation without 'iscrowd'": first_annotation(lambda a: a.pop("iscrowd")),
    "annotation without 'area'": first_annotation(lambda a: a.pop("area")),
    "annotation without 'num_keypoints'": first_annotation(lambda a: a.pop("num_keypoints")),
    "`num_keypoints: \"many\"`": first_annotation(lambda a: a.update(num_keypoints="many")),
    "NaN in a box": first_annotation(lambda a: a["bbox"].__setitem__(1, NAN)),
    "negative box width": first_annotation(lambda a: a["bbox"].__setitem__(2, -a["bbox"][2])),
    "zero-area box": first_annotation(lambda a: a["bbox"].__setitem__(2, 0)),
    "NaN keypoint": first_annotation(lambda a: a["keypoints"].__setitem__(0, NAN)),
    "visibility flag 3": first_annotation(lambda a: a["keypoints"].__setitem__(
        next(i for i in range(2, len(a["keypoints"]), 3) if a["keypoints"][i] > 0), 3)),
    "`num_keypoints` disagrees with the labelled keypoints": first_annotation(
        lambda a: a.update(num_keypoints=a["num_keypoints"] + 1)),
    "keypoints of 16 instead of 17": first_annotation(lambda a: a.update(keypoints=a["keypoints"][:48])),
    "annotation of an unknown image": first_annotation(lambda a: a.update(image_id=987654)),
    "duplicate annotation id": lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]),
}

RESULTS = {  # kind -> how record 2 of perfect results is broken
    "results file is not JSON": None,
    "result of another `category_id`": lambda r: r.update(category_id=2),
    "result for an unknown image": lambda r: r.update(image_id=987654),
    "NaN result score": lambda r: r.update(score=NAN),
    "NaN result keypoint": lambda r: r["keypoints"].__setitem__(0, NAN),
    "result keypoints of 16 instead of 17": lambda r: r.update(keypoints=r["keypoints"][:48]),
}

DETECTIONS = {  # kind -> how record 5 of the mmpose detection file is broken
    "NaN detection score": lambda d: d.update(score=NAN),
    "detection of another `category_id`": lambda d: d.update(category_id=3),
    "NaN detection box": lambda d: d["bbox"].__setitem__(0, NAN),
    "detection for an unknown image": lambda d: d.update(image_id=987654),
}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def broken(src: Path, out: Path, change) -> Path:
    if change is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text('{"images": [')
        return out
    data = json.loads(src.read_text())
    change(data)
    return write(out, data.pop("_replace", data))


def run(args: list[str], src: str | None, root: Path) -> tuple[int, str]:
    """Exit code and the one line a user reads: the error, the AP table's values, or a traceback's last line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.run([sys.executable, "-m", "hsjp.cli", *args], capture_output=True, text=True, env=env, cwd=root)
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if "Traceback (most recent call last):" in proc.stderr:
        text = f"traceback ({len(err)} lines): {err[-1]}"
    elif any(ln.startswith("hsjp: error:") for ln in err):
        text = next(ln for ln in err if ln.startswith("hsjp: error:"))
        if len(err) > 1:
            text += f" (+{len(err) - 1} lines before it)"
    elif proc.returncode == 0:
        out = proc.stdout.splitlines()
        ap = next((out[i + 1].split()[0] for i, ln in enumerate(out) if ln.split()[:2] == ["AP", "AP50"]), None)
        warn = next((ln.split("UserWarning: ")[1] for ln in err if "UserWarning: " in ln), "")
        text = (f"AP {ap}" if ap else "ok") + (f"; warning: {warn}" if warn else "")
    else:
        text = (err or ["(nothing)"])[-1]
    return proc.returncode, text.replace(str(root) + "/", "").replace("|", "\\|")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="scratch folder (data, checkpoint, broken files)")
    p.add_argument("--before", help="another source tree (its src/) to run the score rows against")
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    a = p.parse_args()
    root = Path(a.out).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from hsjp.data.synthetic import generate_dataset

    data = generate_dataset(root / "data", 24, 8, image_size=(160, 128), seed=0)
    val, val_images = data["val_ann"], data["val_images"]
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(val.read_text())["annotations"]]
    results = write(root / "results.json", perfect)
    rows = []  # (kind, command, code, text, before)

    def score(kind: str, ann: Path, res: Path, out: str = "scored") -> None:
        args = ["score", "--ann", str(ann), "--results", str(res), "--out", str(root / out)]
        before = run(args, a.before, root) if a.before else None
        rows.append((kind, "score", *run(args, None, root), before))

    for kind, change in GROUND_TRUTH.items():
        score(kind, broken(val, root / "gt" / f"{len(rows)}.json", change), results)
    for kind, change in RESULTS.items():
        res = copy.deepcopy(perfect)
        if change is not None:
            change(res[2])
        score(kind, val, broken(results, root / "res" / f"{len(rows)}.json", None) if change is None
              else write(root / "res" / f"{len(rows)}.json", res))
    (root / "a-file").write_text("in the way")
    score("`--out` cannot be created (a file is in the way)", val, results, "a-file/out")

    ckpt_dir = root / "ckpt"
    code, text = run(["finetune", "--config", "cpu_r18_128x96", "--out", str(ckpt_dir), f"data.train_ann={data['train_ann']}",
                      f"data.train_images={data['train_images']}", f"data.val_ann={val}", f"data.val_images={val_images}",
                      *TINY], None, root)
    assert code == 0, text
    ckpt = str(ckpt_dir / "checkpoints" / "last.ckpt")

    def evaluate(kind: str, ann: Path, images: Path, extra: list[str] = (), out: str = "evaluated") -> None:
        args = ["evaluate", "--ckpt", ckpt, "--ann", str(ann), "--images", str(images), "--out", str(root / out),
                "--workers", "0", "--show", "0", *extra]
        rows.append((kind, "evaluate", *run(args, None, root), None))

    for kind in ("annotation without 'iscrowd'", "annotation without 'area'", "NaN keypoint", "zero-area box"):
        evaluate(kind, broken(val, root / "gt" / f"e{len(rows)}.json", GROUND_TRUTH[kind]), val_images)
    mmpose = Path(a.shared) / "mmpose_tests" / "coco"
    if mmpose.is_dir():
        for kind, change in DETECTIONS.items():
            dets = json.loads((mmpose / "test_coco_det_AP_H_56.json").read_text())
            change(dets[5])
            evaluate(kind, mmpose / "test_coco.json", mmpose,
                     ["--boxes", str(write(root / "dets" / f"{len(rows)}.json", dets))])
    truncated = root / "truncated"
    shutil.copytree(val_images, truncated)
    victim = sorted(truncated.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-500])
    evaluate("truncated JPEG", val, truncated)
    evaluate("`--out` cannot be created (a file is in the way)", val, val_images, out="a-file/out")

    def finetune(kind: str, *overrides: str) -> None:
        args = ["finetune", "--config", "cpu_r18_128x96", "--out", str(root / f"ft{len(rows)}"),
                f"data.train_ann={data['train_ann']}", f"data.train_images={data['train_images']}",
                f"data.val_ann={val}", f"data.val_images={val_images}", *TINY, *overrides]
        rows.append((kind, "finetune", *run(args, None, root), None))

    train = data["train_ann"]
    for kind in ("annotation without 'iscrowd'", "annotation without 'area'", "annotation without 'num_keypoints'"):
        finetune(f"{kind} (training file)", f"data.train_ann={broken(train, root / 'gt' / f't{len(rows)}.json', GROUND_TRUTH[kind])}")
    no_area = broken(val, root / "gt" / "v-no-area.json", GROUND_TRUTH["annotation without 'area'"])
    finetune("annotation without 'area' (validation file)", f"data.val_ann={no_area}")
    finetune("zero-area box (training file: skipped)",
             f"data.train_ann={broken(train, root / 'gt' / f't{len(rows)}.json', GROUND_TRUTH['zero-area box'])}")
    shutil.rmtree(truncated)
    shutil.copytree(data["train_images"], truncated)
    victim = sorted(truncated.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-500])
    finetune("truncated JPEG (1 of 24 training images)", f"data.train_images={truncated}", "train.max_skipped_fraction=0.2")

    head = "| bad input | command | what the user sees | exit |" + (" before: what the user saw | exit |" if a.before else "")
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for kind, cmd, code, text, before in rows:
        line = f"| {kind} | `hsjp {cmd}` | {text} | {code} |"
        if a.before:
            line += f" {before[1]} | {before[0]} |" if before else " | |"
        print(line)


if __name__ == "__main__":
    main()
