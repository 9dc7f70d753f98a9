"""``hsjp export``: a finetuned pose network as ONNX or safetensors, and the loaders that read them back.

Both formats carry :class:`hsjp.inference.PoseSpec` as metadata (input size, keypoint names, skeleton,
flip pairs, normalisation), so :class:`hsjp.PoseEstimator` predicts from the file alone. The ONNX
graph is the network only (crop -> heatmaps, dynamic batch axis); flip test and decoding stay in
Python, so an ONNX model's keypoints come from the same code as the PyTorch model's.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from hsjp.config import to_dict
from hsjp.errors import CheckpointError, ConfigError, brief
from hsjp.inference import PoseSpec
from hsjp.io import atomic_write_bytes

FORMATS = ("onnx", "safetensors")
#: Metadata key naming what an exported file is, so a pretext's backbone file is refused by name.
FORMAT_KEY, POSE_NETWORK = "hsjp.format", "pose-network"
ONNX_OPSET = 17


def _dataset_info(ckpt: dict, num_outputs: int) -> tuple[list[str], list]:
    """Keypoint names and skeleton saved by the data module; COCO's for an older 17-keypoint checkpoint."""
    saved = ckpt.get("CropDataModule") or {}
    if saved.get("keypoint_names"):
        return list(saved["keypoint_names"]), list(saved.get("skeleton", []))
    from hsjp.data.synthetic import COCO_KEYPOINT_NAMES, COCO_SKELETON

    if num_outputs == len(COCO_KEYPOINT_NAMES):
        return list(COCO_KEYPOINT_NAMES), COCO_SKELETON
    return [f"keypoint_{i}" for i in range(num_outputs)], []


def load_checkpoint_network(path: str | os.PathLike) -> tuple[torch.nn.Module, PoseSpec, dict]:
    """The pose network, its spec and config from a finetune checkpoint; a pretext checkpoint is refused."""
    from hsjp.training.checkpoints import read_checkpoint
    from hsjp.training.modules import PoseModule

    ckpt = read_checkpoint(path, mmap=True)
    try:
        hp = ckpt["hyper_parameters"]
        task = hp["cfg"].get("task", "pose")
    except (KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: not an hsjp training checkpoint (no hyper_parameters.cfg)") from None
    if task != "pose":
        raise CheckpointError(f"{path}: a {task} (pretext) checkpoint predicts puzzle pieces, not keypoints; "
                              "finetune from it first (hsjp finetune --init)")
    module = PoseModule.from_checkpoint(str(path))
    names, skeleton = _dataset_info(ckpt, module.model.num_outputs)
    spec = PoseSpec.from_config(module.cfg, names, skeleton, module.flip_pairs)
    return module.model, spec, to_dict(module.cfg)


def load_safetensors_network(path: str | os.PathLike) -> tuple[torch.nn.Module, PoseSpec, dict | None]:
    """An ``hsjp export --format safetensors`` file: tensors and JSON metadata only, no pickle, no Lightning."""
    from hsjp.models import create_model
    from hsjp.models.weights import match_part, read_state_dict

    state, meta = read_state_dict(path)
    if meta.get(FORMAT_KEY) != POSE_NETWORK:
        raise CheckpointError(f"{path}: not an exported pose network (no {FORMAT_KEY}={POSE_NETWORK} metadata); "
                              "a pretext's network.safetensors is for --init, make one with `hsjp export`")
    spec = PoseSpec.from_metadata(meta, str(path))
    model = create_model(spec.arch, spec.num_keypoints, deconv_channels=spec.deconv_channels)
    fitting, report = match_part(model, state, str(path), "network")
    if report.missing or report.mismatched or report.unexpected:
        raise CheckpointError(f"{path}: does not fit its own metadata ({spec.arch}): {report.summary()}")
    model.load_state_dict(fitting, strict=False)
    config = json.loads(meta["hsjp.config"]) if "hsjp.config" in meta else None
    return model, spec, config


def export_safetensors(model: torch.nn.Module, spec: PoseSpec, config: dict | None, out: str | os.PathLike) -> Path:
    """The whole network (the pretext export's layout) with the spec and config as metadata."""
    from hsjp.models.weights import export_network

    meta = {**spec.to_metadata(), FORMAT_KEY: POSE_NETWORK, **({"hsjp.config": json.dumps(config)} if config else {})}
    return export_network(model, out, meta)


def export_onnx(model: torch.nn.Module, spec: PoseSpec, out: str | os.PathLike, opset: int = ONNX_OPSET) -> Path:
    """The network (normalised crop -> heatmaps) with a dynamic batch axis, the spec as metadata."""
    onnx = _require("onnx")
    model = model.eval().cpu()
    w, h = spec.input_size
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, h, w),), buffer, input_names=["input"], output_names=["heatmaps"],
                          dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in {**spec.to_metadata(), FORMAT_KEY: POSE_NETWORK}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"hsjp {spec.arch} pose network: input (N, 3, {h}, {w}) RGB crops normalised by "
                        f"(x - mean) / std, output (N, {spec.num_keypoints}, {spec.heatmap_size[1]}, "
                        f"{spec.heatmap_size[0]}) heatmaps; see the hsjp.* metadata")
    return atomic_write_bytes(out, proto.SerializeToString())


def onnx_session(path: str | os.PathLike, device: str = "cpu"):
    """An ONNX Runtime session for an exported pose network, and its spec from the file's metadata."""
    ort = _require("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(f"device {device}: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
        index = int(device.partition(":")[2] or 0)
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    elif device != "cpu":
        raise ConfigError(f"device {device!r}: ONNX models run on 'cpu' or 'cuda[:N]'")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch (OMP_NUM_THREADS)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeError types
        raise CheckpointError(f"{path}: not a loadable ONNX model ({brief(e)})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(FORMAT_KEY) != POSE_NETWORK:
        raise CheckpointError(f"{path}: an ONNX model without hsjp pose-network metadata (made by `hsjp export`?)")
    return session, PoseSpec.from_metadata(meta, str(path))


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed: pip install 'hsjp[onnx]'") from None


def export_checkpoint(ckpt: str | os.PathLike, fmt: str, out: str | os.PathLike) -> Path:
    """``hsjp export``: a finetune checkpoint (or an earlier safetensors export) to ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    loader = load_safetensors_network if Path(ckpt).suffix == ".safetensors" else load_checkpoint_network
    model, spec, config = loader(ckpt)
    if fmt == "onnx":
        return export_onnx(model, spec, out)
    return export_safetensors(model, spec, config, out)

