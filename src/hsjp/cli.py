"""The ``hsjp`` command line. Each subcommand is a thin layer over a library function."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from hsjp.errors import HsjpError, Interrupted


def _config(args: argparse.Namespace, task: str):
    """The run's config; a pretext command keeps the config's own pretext task (jigsaw or jigsaw_cls)."""
    from hsjp.config import PRETEXT_TASKS, load_config

    overrides = list(args.overrides)
    for flag, key in (("init", "model.init"), ("transfer", "model.transfer"), ("devices", "trainer.devices"), ("num_nodes", "trainer.num_nodes"),
                      ("precision", "trainer.precision")):
        if getattr(args, flag, None) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    cfg = load_config(args.config, overrides)
    if not (task in PRETEXT_TASKS and cfg.task in PRETEXT_TASKS):
        cfg.task = task
    return cfg


def cmd_finetune(args: argparse.Namespace) -> None:
    from hsjp.training.run import train

    metrics = train(_config(args, "pose"), args.out)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})


def cmd_pretrain(args: argparse.Namespace) -> None:
    from hsjp.training.run import train

    metrics = train(_config(args, "jigsaw"), args.out)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    from hsjp.training.run import PRETRAINED_FILE

    print(f"pretrained weights (for --init): {Path(args.out) / PRETRAINED_FILE}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from hsjp.evaluate import evaluate_checkpoint

    evaluate_checkpoint(args.ckpt, args.ann, args.images, args.out, args.boxes, not args.no_flip,
                        args.batch_size, args.workers, show=args.show, keypoints=args.keypoints)


def cmd_score(args: argparse.Namespace) -> None:
    from hsjp.evaluation.metrics import format_table, score_file

    metrics = score_file(args.ann, args.results, args.out, keypoints=args.keypoints)
    subset = f", keypoints {args.keypoints} only" if args.keypoints else ""
    print(format_table(metrics, f"{Path(args.results).name} against {Path(args.ann).name}{subset}"))


def cmd_show_puzzle(args: argparse.Namespace) -> None:
    from hsjp.puzzle import show_puzzle

    path = show_puzzle(_config(args, "jigsaw"), args.out, args.ckpt, args.n, args.seed)
    print(f"wrote {path}")


def cmd_make_data(args: argparse.Namespace) -> None:
    from hsjp.data.synthetic import generate_dataset

    paths = generate_dataset(args.out, args.train, args.val, seed=args.seed)
    for k, v in paths.items():
        print(f"{k}: {v}")


def cmd_experiment(args: argparse.Namespace) -> None:
    from hsjp.experiment import load_experiment, run_experiment

    run_experiment(load_experiment(args.config, args.overrides), args.out, report_only=args.report_only,
                   only_seeds=args.seeds, only_arms=args.arms, only_fractions=args.fractions)


def cmd_demo(args: argparse.Namespace) -> None:
    from hsjp.experiment import run_demo

    run_demo(args.out, args.data, fast=args.fast)


def cmd_predict(args: argparse.Namespace) -> None:
    from hsjp.predict import run_predict

    counts = run_predict(args.ckpt, args.inputs, args.out, args.boxes, args.whole_image, args.detector,
                         args.detector_model, args.detector_weights, args.detector_score, args.device,
                         args.batch_size, not args.no_flip, args.min_score, args.keypoint_thr)
    print(f"{counts['persons']} persons in {counts['images']} images and {counts['videos']} videos: "
          f"{Path(args.out) / 'keypoints_results.json'}, overlays in {Path(args.out) / 'overlays'}")


def cmd_export(args: argparse.Namespace) -> None:
    from hsjp.export import export_checkpoint

    print(f"wrote {export_checkpoint(args.ckpt, args.format, args.out)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hsjp", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help)
        s.add_argument("--config", required=True, help="YAML file, or the name of a shipped config")
        s.add_argument("--out", required=True, help="run folder (re-running resumes it)")
        s.add_argument("overrides", nargs="*", help="section.field=value, e.g. train.epochs=5")
        return s

    def with_trainer(s: argparse.ArgumentParser) -> argparse.ArgumentParser:
        s.add_argument("--devices", help="Lightning devices: a count, 'auto', or a list (trainer.devices)")
        s.add_argument("--num-nodes", type=int, help="nodes for DDP (trainer.num_nodes)")
        s.add_argument("--precision", help="auto (bf16-mixed where the hardware has bf16, else 32-true), 32-true, bf16-mixed, "
                       "16-mixed (trainer.precision)")
        return s

    def with_keypoints(s: argparse.ArgumentParser) -> None:
        s.add_argument("--keypoints", metavar="SUBSET",
                       help="score only these keypoints: 0-based indices, ranges or names, e.g. 5-16 "
                            "(what LSPET labels); the others count as unlabelled")

    s = with_trainer(with_config("finetune", "train a pose network on COCO keypoints"))
    s.add_argument("--init", help="'scratch', 'imagenet' or a weights file (e.g. OUT/network.safetensors)")
    s.add_argument("--transfer", choices=["backbone", "network"],
                   help="what --init fills: the backbone, or the network but its final conv (model.transfer)")
    s.set_defaults(func=cmd_finetune)
    with_trainer(with_config("pretrain", "HSJP self-supervised pretraining on person crops")).set_defaults(func=cmd_pretrain)

    s = sub.add_parser("evaluate", help="OKS AP of a checkpoint on a COCO keypoint file")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--ann", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--boxes", help="COCO detection-results file; default: ground-truth boxes")
    s.add_argument("--no-flip", action="store_true", help="disable flip test")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--show", type=int, default=8, metavar="N",
                   help="draw the N highest-scoring predictions with the ground truth into OUT/predictions.png (0: none)")
    with_keypoints(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("score", help="OKS AP of any COCO keypoint results file")
    s.add_argument("--ann", required=True)
    s.add_argument("--results", required=True)
    s.add_argument("--out")
    with_keypoints(s)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("show-puzzle", help="PNG of puzzles, their target and predicted heatmaps")
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True, help="PNG path")
    s.add_argument("--ckpt", help="pretext checkpoint whose predictions to show")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("overrides", nargs="*")
    s.set_defaults(func=cmd_show_puzzle)

    s = sub.add_parser("make-data", help="write a small synthetic COCO-format keypoint dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=200)
    s.add_argument("--val", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_make_data)

    s = with_config("experiment", "scratch vs HSJP vs ImageNet, one resumable command")
    s.add_argument("--report-only", action="store_true",
                   help="run nothing: tabulate the finished arms, every planned one listed (so no --seeds/--arms/--fractions)")
    s.add_argument("--seeds", type=int, nargs="+",
                   help="run only these seeds' arms: start one process per seed (same --out) to share the work")
    s.add_argument("--arms", nargs="+",
                   help="run only these arms (in the plan's order): to put first the runs that decide most")
    s.add_argument("--fractions", type=float, nargs="+",
                   help="run only these label fractions' arms (e.g. 0.1), likewise")
    s.set_defaults(func=cmd_experiment)

    s = sub.add_parser("demo", help="the whole experiment on generated data, in minutes")
    s.add_argument("--out", default="hsjp-demo")
    s.add_argument("--data", help="a data root laid out like ../shared/data/lspet instead of generated data")
    s.add_argument("--fast", action="store_true", help="six steps of a tiny network per run: checks the set-up, measures nothing")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("predict", help="keypoints on your own images, folders of images and videos, with overlays")
    s.add_argument("--ckpt", required=True, help="finetune checkpoint, or an `hsjp export` .safetensors / .onnx file")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, video files")
    s.add_argument("--out", required=True, help="folder for keypoints_results.json and overlays/")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--boxes", metavar="DETS.json",
                       help="COCO detection results, matched by file_name (+ frame for videos) or image_id")
    where.add_argument("--whole-image", action="store_true", help="each image (frame) is one person's box")
    where.add_argument("--detector", action="store_true", help="find persons with a torchvision Faster R-CNN")
    s.add_argument("--detector-model", default="fasterrcnn_resnet50_fpn",
                   choices=["fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                            "fasterrcnn_mobilenet_v3_large_320_fpn"])
    s.add_argument("--detector-weights", metavar="FILE", help="local state dict of --detector-model (default: download)")
    s.add_argument("--detector-score", type=float, default=0.5, help="minimum detector score of a person box")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    s.add_argument("--batch-size", type=int, default=32, help="person crops per forward pass")
    s.add_argument("--no-flip", action="store_true", help="disable flip test")
    s.add_argument("--min-score", type=float, default=0.0, help="draw only persons scoring at least this")
    s.add_argument("--keypoint-thr", type=float, default=0.2, help="draw only keypoints scoring above this")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("export", help="a finetuned network as ONNX or safetensors, for use without hsjp's training code")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    s.add_argument("--out", required=True, help="the file to write")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("HSJP_LOG"):
        logging.basicConfig(level=os.environ["HSJP_LOG"])
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Interrupted as e:
        if not e.main_process:
            return 0
        print(f"hsjp: {e}", file=sys.stderr)
        return 128 + signal.SIGTERM  # what a shell reports for a SIGTERM, so a scheduler sees a stopped run
    except HsjpError as e:
        print(f"hsjp: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused: --out not creatable, disk full, read-only
        print(f"hsjp: error: {e.filename}: {e.strerror}" if e.filename else f"hsjp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hsjp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
