"""Does bf16 autocast (+ channels_last) change what the network computes enough to matter?

On a trained pretext checkpoint and held-out LSPET crops: relative heatmap difference, decoded
placement agreement and accuracy under fp32 vs bf16, and the cosine similarity of the parameter
gradients of one training batch. Usage:

    python benchmarks/bf16_numerics.py --ckpt runs/lspet/pretrain/seed0/checkpoints/last.ckpt --n 256
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from hsjp.codecs import jigsaw_codec
from hsjp.data.crops import collate_skipping
from hsjp.jigsaw import placement_accuracy
from hsjp.training.datamodule import CropDataModule
from hsjp.training.modules import JigsawModule


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=256)
    args = p.parse_args()
    module = JigsawModule.from_checkpoint(args.ckpt)
    cfg = module.cfg
    dm = CropDataModule(cfg)
    dm.setup("fit")
    subset = torch.utils.data.Subset(dm.val_set, range(args.n))
    batch = next(iter(DataLoader(subset, batch_size=args.n, collate_fn=collate_skipping)))
    codec = jigsaw_codec(cfg)
    x = batch["image"]
    model = module.model.eval()
    out = {}
    with torch.no_grad():
        ref = model(x).float()
        xl = x.contiguous(memory_format=torch.channels_last)
        model_cl = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model_cl(xl).float()
        model.to(memory_format=torch.contiguous_format)
    true = batch["permutation"].numpy()
    p32, p16 = codec.decode(ref.numpy()), codec.decode(low.numpy())
    out["heatmap_rel_diff"] = float((ref - low).norm() / ref.norm())
    out["placement_acc_fp32"] = placement_accuracy(p32, true)
    out["placement_acc_bf16_cl"] = placement_accuracy(p16, true)
    out["decoded_cells_identical"] = float((p32 == p16).mean())
    model.train()
    grads = []
    for bf16 in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(x[:32])
        module.loss_fn(pred, batch["heatmaps"][:32], batch["weights"][:32]).backward()
        grads.append(torch.cat([q.grad.flatten() for q in model.parameters()]).double())  # 11M terms: fp32 sums drift past 1
    out["gradient_cosine"] = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
    out["gradient_rel_diff"] = float((grads[0] - grads[1]).norm() / grads[0].norm())
    print(json.dumps({"ckpt": args.ckpt, "crops": args.n, **{k: round(v, 5) for k, v in out.items()}}, indent=1))


if __name__ == "__main__":
    main()
