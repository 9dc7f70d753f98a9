"""Cost of making a puzzle sample against the rest of the sample pipeline (decode + warp).

Times, per person crop, on real LSPET images: image decode (cv2.imread), crop warp (box ->
affine -> cv2.warpAffine), and JigsawCodec.encode (shuffle + puzzle heatmaps) for several grids
and shortcut options; then the whole PersonCrops sample with the puzzle target. Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_pipeline.py --n 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hsjp.data.annotations import load_annotations
from hsjp.data.crops import CropGeometry, PersonCrops, read_image
from hsjp.data.geometry import affine_matrix, box_to_center_scale, warp
from hsjp.data.targets import PuzzleTarget
from hsjp.jigsaw import JigsawCodec

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"


def per_call_us(fn, items) -> float:
    t = time.perf_counter()
    for item in items:
        fn(item)
    return 1e6 * (time.perf_counter() - t) / len(items)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--size", type=int, nargs=2, default=[192, 256], metavar=("W", "H"))
    args = p.parse_args()
    size = tuple(args.size)
    anns = load_annotations(LSPET / "annotations" / "person_keypoints_lspet_val.json", LSPET / "images")
    records = anns.persons(require_keypoints=False)[: args.n]
    geometry = CropGeometry(size)
    images = [read_image(r.image_path) for r in records]

    def crop(i: int) -> np.ndarray:
        c, s = box_to_center_scale(records[i].bbox, geometry.aspect_ratio)
        return warp(images[i], affine_matrix(c, s, 0.0, size), size)

    idx = list(range(len(records)))
    crops = [crop(i) for i in idx]
    hm = (size[0] // 4, size[1] // 4)
    rows = {"decode_us": per_call_us(lambda i: read_image(records[i].image_path), idx),
            "warp_us": per_call_us(crop, idx)}
    rng = np.random.default_rng(0)
    for name, codec in {
        "puzzle_4x3_us": JigsawCodec((4, 3), size, hm),
        "puzzle_2x2_us": JigsawCodec((2, 2), size, hm),
        "puzzle_4x4_us": JigsawCodec((4, 4), size, hm),
        "puzzle_4x3_gap8_jitter0.2_us": JigsawCodec((4, 3), size, hm, gap=8, color_jitter=0.2),
    }.items():
        rows[name] = per_call_us(lambda i, c=codec: c.encode(crops[i], rng), idx)
    ds = PersonCrops(records, geometry, PuzzleTarget(JigsawCodec((4, 3), size, hm)))
    rows["full_puzzle_sample_us"] = per_call_us(ds.__getitem__, idx)
    base = rows["decode_us"] + rows["warp_us"]
    rows["puzzle_4x3_share_of_decode_plus_warp"] = rows["puzzle_4x3_us"] / base
    print(json.dumps({"input_wh": size, "crops": len(records), **{k: round(v, 3) for k, v in rows.items()}}, indent=1))


if __name__ == "__main__":
    main()
