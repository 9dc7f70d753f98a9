"""Small ablation of the HSJP pretext settings, judged by what they transfer, not by the pretext.

Placement accuracy is not comparable across grids (chance is 1/K), so each variant is judged by a
short finetune probe started from its backbone. Nothing here touches the evaluation split: LSPET's
train split is divided by annotation id into 'fit' (pretraining and probe finetuning) and 'probe'
(the last ``--holdout`` persons, for the probe's PCK@0.1 and AP). Resumable: finished runs are
skipped. Usage:

    python benchmarks/ablation_pretext.py --out runs/ablation --pretrain-steps 1000 --probe-steps 600
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hsjp.config import load_config
from hsjp.io import atomic_write_json, atomic_write_text
from hsjp.training.run import train

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
VARIANTS = {
    "grid2x2": ["jigsaw.grid=[2,2]"],
    "grid4x3": ["jigsaw.grid=[4,3]"],
    "grid4x4": ["jigsaw.grid=[4,4]"],
    # the 4x3 puzzle with the crop's out-of-image region filled by reflection instead of black bands
    "grid4x3_reflect": ["jigsaw.grid=[4,3]", "data.border=reflect"],
}


def split_train(out: Path, holdout: int) -> dict[str, Path]:
    """fit / probe annotation files cut from LSPET train (by annotation id)."""
    paths = {name: out / "splits" / f"lspet_train_{name}.json" for name in ("fit", "probe")}
    if all(p.is_file() for p in paths.values()):
        return paths
    data = json.loads((LSPET / "annotations" / "person_keypoints_lspet_train.json").read_text())
    anns = sorted(data["annotations"], key=lambda a: a["id"])
    for name, part in (("fit", anns[:-holdout]), ("probe", anns[-holdout:])):
        ids = {a["image_id"] for a in part}
        atomic_write_json(paths[name], {**data, "annotations": part,
                                        "images": [i for i in data["images"] if i["id"] in ids]}, indent=None)
    return paths


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--pretrain-steps", type=int, default=1000)
    p.add_argument("--probe-steps", type=int, default=600)
    p.add_argument("--holdout", type=int, default=1000)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = p.parse_args()
    out = Path(args.out)
    split = split_train(out, args.holdout)
    data = [f"data.train_ann={split['fit']}", f"data.val_ann={split['probe']}",
            f"data.train_images={LSPET / 'images'}", f"data.val_images={LSPET / 'images'}",
            "trainer.progress_bar=false"]
    results = {}
    for name in ["scratch", *args.variants]:
        init = "scratch"
        if name != "scratch":
            pre_dir = out / name / "pretrain"
            if not (pre_dir / "pretext_metrics.json").is_file():
                cfg = load_config("hsjp_cpu_r18_128x96", [*data, *VARIANTS[name], f"train.max_steps={args.pretrain_steps}",
                                                          "train.epochs=100", "train.milestones=[100]"])
                train(cfg, pre_dir)
            results.setdefault(name, {})["pretext"] = json.loads((pre_dir / "pretext_metrics.json").read_text())
            init = str(pre_dir / "backbone.safetensors")
        probe_dir = out / name / "probe"
        if not (probe_dir / "metrics.json").is_file():
            cfg = load_config("cpu_r18_128x96", [*data, f"model.init={init}", f"train.max_steps={args.probe_steps}",
                                                 "train.epochs=100", "train.milestones=[100]", "train.val_every_n_epochs=100"])
            train(cfg, probe_dir)
        results.setdefault(name, {})["probe"] = json.loads((probe_dir / "metrics.json").read_text())
        atomic_write_json(out / "ablation.json", {"args": vars(args), "results": results})
    lines = ["| variant | pretext placement acc (chance) | probe PCK@0.1 | probe AP |", "|---|---|---|---|"]
    for name, r in results.items():
        pre = r.get("pretext")
        acc = f"{100 * pre['placement_acc']:.1f}% ({100 * pre['chance_placement_acc']:.1f}%)" if pre else "-"
        lines.append(f"| {name} | {acc} | {100 * r['probe']['PCK@0.1']:.1f} | {100 * r['probe']['AP']:.1f} |")
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
