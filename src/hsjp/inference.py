"""The one top-down inference path: person boxes -> crops -> (flip-test) heatmaps -> image-pixel keypoints.

``hsjp evaluate``, :class:`hsjp.PoseEstimator` and ``hsjp predict`` all call :func:`predict_records`,
whatever runs the network (PyTorch eager, bf16, ONNX Runtime), so a keypoint that ``predict`` draws
is exactly the one ``evaluate`` scores. :class:`PoseSpec` is everything besides the weights that this
path needs; it travels with an exported model as metadata, so an export predicts without its config.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from hsjp.config import Config
from hsjp.data.annotations import PersonRecord
from hsjp.data.crops import IMAGENET_MEAN, IMAGENET_STD, CropGeometry, PersonCrops, collate_skipping
from hsjp.data.targets import ImageOnly
from hsjp.data.validate import read_image
from hsjp.errors import CheckpointError, DataError
from hsjp.evaluation.topdown import decode_batch, predict_heatmaps
from hsjp.heatmaps import HeatmapCodec
from hsjp.training.precision import native_bf16

#: A network as the inference path sees it: normalised crops (N, 3, H, W) -> heatmaps (N, K, H/4, W/4).
Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PoseSpec:
    """What a pose network's crops and heatmaps mean: sizes, crop rule, keypoints, normalisation."""

    arch: str
    input_size: tuple[int, int]  # w, h of a crop
    heatmap_size: tuple[int, int]  # w, h
    sigma: float
    box_padding: float
    border: str
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 1-based pairs, as COCO
    flip_pairs: tuple[tuple[int, int], ...]
    mean: tuple[float, float, float] = tuple(float(v) for v in IMAGENET_MEAN)  # RGB, on 0-255 pixels
    std: tuple[float, float, float] = tuple(float(v) for v in IMAGENET_STD)
    oks_sigmas: tuple[float, ...] | None = None  # None: COCO's
    deconv_channels: int = 256

    @classmethod
    def from_config(cls, cfg: Config, keypoint_names: list[str], skeleton: list, flip_pairs: list) -> PoseSpec:
        d = cfg.data
        return cls(cfg.model.arch, tuple(d.input_size), tuple(cfg.heatmap_size), float(d.sigma), float(d.box_padding),
                   d.border, tuple(keypoint_names), tuple(tuple(p) for p in skeleton),
                   tuple(tuple(p) for p in flip_pairs),
                   oks_sigmas=tuple(d.oks_sigmas) if d.oks_sigmas else None, deconv_channels=cfg.model.deconv_channels)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def geometry(self) -> CropGeometry:
        return CropGeometry(tuple(self.input_size), self.box_padding, self.border)

    @property
    def codec(self) -> HeatmapCodec:
        return HeatmapCodec(tuple(self.input_size), tuple(self.heatmap_size), self.sigma)

    def to_metadata(self) -> dict[str, str]:
        """One JSON string per field: the string map that ONNX and safetensors metadata hold."""
        return {f"hsjp.{k}": json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> PoseSpec:
        names = {f.name for f in fields(cls)}
        try:
            values = {k.removeprefix("hsjp."): json.loads(v) for k, v in meta.items()
                      if k.startswith("hsjp.") and k.removeprefix("hsjp.") in names}
            values = {k: _tuples(v) for k, v in values.items()}
            spec = cls(**values)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: no hsjp pose-network metadata (not made by `hsjp export`?): {e}") from None
        if tuple(spec.mean) != tuple(float(v) for v in IMAGENET_MEAN) or tuple(spec.std) != tuple(
                float(v) for v in IMAGENET_STD):
            raise CheckpointError(f"{source}: normalisation mean {spec.mean} std {spec.std} is not the ImageNet "
                                  "one hsjp's crops use")
        return spec


def _tuples(value):
    """JSON lists back to the tuples the frozen spec holds (so two specs compare equal)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class TorchNetwork:
    """A PyTorch pose network on a device, optionally channels_last and under bf16 autocast.

    Heatmaps come back as float32 on the CPU, whatever ran the network, so decoding never sees bf16.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", channels_last: bool = False,
                 bf16: bool = False):
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        self.bf16 = bf16
        if bf16 and self.device.type == "cpu" and not native_bf16(on_cuda=False):
            warnings.warn("bf16 on a CPU without AVX512_BF16 or AMX is emulated: inference there ran 50x slower "
                          "than fp32 (benchmarks/RESULTS.md section 15)", stacklevel=3)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device).contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x).float().cpu()


class OnnxNetwork:
    """An exported network run by ONNX Runtime (the same crops in, the same heatmaps out)."""

    def __init__(self, session):
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])


def predict_records(network: Network, records: list[PersonRecord], spec: PoseSpec, flip_test: bool = True,
                    batch_size: int = 32, num_workers: int = 0, read: Callable[[str], np.ndarray] = read_image,
                    progress: Callable[[int], object] | None = None) -> list[dict]:
    """One prediction per record (see :func:`hsjp.evaluation.topdown.decode_batch`), in record order.

    ``read`` turns a record's ``image_path`` into an RGB image (files by default; the API passes its
    in-memory images). A record whose image cannot be read is an error, never a silent gap.
    """
    dataset = PersonCrops(records, spec.geometry, ImageOnly(), read=read)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skipping)
    flip_pairs = [tuple(p) for p in spec.flip_pairs]
    preds: list[dict] = []
    with torch.inference_mode():
        for batch in loader:
            if batch["skipped"]:
                raise DataError(batch["skipped"][0])
            heatmaps = predict_heatmaps(network, batch["image"], flip_pairs, flip_test)
            preds.extend(decode_batch(heatmaps, batch["meta"], spec.codec))
            if progress is not None:
                progress(len(batch["image"]))
    return preds
