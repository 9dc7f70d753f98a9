"""Synthetic COCO-format stick people: a demo dataset and test fixture that needs no download.

Every pipeline stage (loading, cropping, heatmap targets, training, COCO evaluation) has to be
runnable in CI and in the docs without the 20 GB COCO archive, so this module writes a tiny
dataset in *exactly* the COCO ``person_keypoints`` layout. The people are stick figures, but
they are built to exercise the same things real data does:

* cluttered backgrounds, so a network cannot find people by "anything that is not flat";
* 1..N people per image at very different scales, drawn in depth order, so crops contain
  distractor limbs and the top-down pipeline's bbox handling matters;
* left limbs, right limbs and torso in separate hue families, so left/right is learnable
  (the flip-pairing code can then be tested for real: a wrong swap visibly hurts accuracy);
* honest visibility flags (v=1 for keypoints covered by a later person or an occluder,
  v=0 with x=y=0 outside the image), so visibility-dependent code paths are exercised.

Each image is drawn from its own generator seeded by ``(seed, split, index)``: the dataset is
reproducible, and image *i* of a split is the same whatever ``n_train``/``n_val`` are, so a
bigger demo set is a superset of a smaller one.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hsjp.errors import ConfigError
from hsjp.io import atomic_write_json

__all__ = ["COCO_KEYPOINT_NAMES", "COCO_SKELETON", "generate_dataset"]

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# 1-based, verbatim from COCO's person_keypoints categories[0]['skeleton'], so files written
# here are interchangeable with the real annotation files.
COCO_SKELETON: list[list[int]] = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip

_NUM_KPT = len(COCO_KEYPOINT_NAMES)
_SHIFT = 4  # cv2 fixed-point bits: joints are placed with 1/16-pixel precision
_ONE = 1 << _SHIFT

# Body proportions in units of the person's height (hip centre at the origin, y down).
# Head top sits at -(TORSO + NECK + HEAD_R), ankles at about +(THIGH + SHIN).
_TORSO, _NECK, _HEAD_R = 0.30, 0.125, 0.06
_SHOULDER_HALF, _HIP_HALF = 0.115, 0.075
_UPPER_ARM, _FOREARM = 0.165, 0.14
_THIGH, _SHIN = 0.24, 0.235
_BODY_LEN = _TORSO + _NECK + _HEAD_R + _THIGH + _SHIN

# Face points on a unit head sphere, (x, y, z) with x towards the person's left when they face
# the camera and z towards the camera. Turning the head (yaw) moves them sideways and can hide
# them behind the head, which is what makes the face flags honest for profile/back views.
_FACE_3D = np.array(
    [
        [0.0, 0.20, 1.0],  # nose
        [0.38, -0.15, 0.9],  # left eye
        [-0.38, -0.15, 0.9],  # right eye
        [0.97, 0.0, -0.1],  # left ear
        [-0.97, 0.0, -0.1],  # right ear
    ]
)
# An ear sticks out of the silhouette, so it stays visible slightly past the head's edge.
_FACE_VISIBLE_Z = np.array([0.05, 0.05, 0.05, -0.35, -0.35])

# Hue families (OpenCV-independent, 0..1). Left and right must never overlap, or a network
# has no cue for the flip; upper and lower segments differ in brightness so joints show.
_HUE = {
    "left_arm": 0.07,  # orange
    "left_leg": 0.98,  # red
    "right_arm": 0.52,  # cyan
    "right_leg": 0.64,  # blue
    "torso": 0.33,  # green
}
_SKIN_BGR = np.array(
    [[189, 224, 255], [160, 200, 240], [120, 170, 220], [80, 125, 180], [50, 85, 130]], float
)

_OCCLUDER_ID = 255  # id-map value for occluders; people are 1..max_people, background 0


def generate_dataset(
    root: str | Path,
    n_train: int = 48,
    n_val: int = 16,
    image_size: tuple[int, int] = (256, 192),
    max_people: int = 3,
    seed: int = 0,
) -> dict[str, Path]:
    """Write a synthetic COCO person_keypoints dataset under ``root`` and return its paths.

    ``image_size`` is (width, height), following COCO's ``width``/``height`` order. Val image and
    annotation ids continue after the train ones, as in COCO, so the two files can be merged or
    evaluated together without id clashes. Existing files under ``root`` are overwritten.

    Returns ``{'train_ann', 'val_ann', 'train_images', 'val_images', 'root'}``.
    """
    width, height = _check_args(n_train, n_val, image_size, max_people, seed)
    root = Path(root)
    out: dict[str, Path] = {"root": root}
    next_image_id, next_ann_id = 1, 1
    for split_idx, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        img_dir = root / "images" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for i in range(n):
            rng = np.random.default_rng([seed, split_idx, i])
            image, people = _render_image(rng, width, height, max_people)
            image_id = next_image_id
            next_image_id += 1
            file_name = f"{image_id:012d}.jpg"
            if not cv2.imwrite(str(img_dir / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"cv2.imwrite could not write {img_dir / file_name}")
            images.append(
                {"id": image_id, "file_name": file_name, "width": width, "height": height}
            )
            for person in people:
                annotations.append({"id": next_ann_id, "image_id": image_id, **person})
                next_ann_id += 1
        ann_path = root / "annotations" / f"person_keypoints_{split}.json"
        atomic_write_json(
            ann_path,
            {
                "info": {
                    "description": "hsjp synthetic stick people",
                    "version": "1.0",
                    "seed": int(seed),
                },
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [
                    {
                        "id": 1,
                        "name": "person",
                        "supercategory": "person",
                        "keypoints": list(COCO_KEYPOINT_NAMES),
                        "skeleton": [list(p) for p in COCO_SKELETON],
                    }
                ],
            },
        )
        out[f"{split}_ann"] = ann_path
        out[f"{split}_images"] = img_dir
    return out


def _check_args(
    n_train: int, n_val: int, image_size: tuple[int, int], max_people: int, seed: int
) -> tuple[int, int]:
    """Reject bad sizes up front: they would otherwise surface as cryptic OpenCV errors."""
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(
                f"synthetic dataset: {name} must be a non-negative int, got {value!r}"
            )
    if not isinstance(max_people, (int, np.integer)) or not 1 <= max_people < _OCCLUDER_ID:
        raise ConfigError(
            f"synthetic dataset: max_people must be an int in 1..254, got {max_people!r}"
        )
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic dataset: seed must be a non-negative int, got {seed!r}")
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ConfigError(
            f"synthetic dataset: image_size must be (width, height), got {image_size!r}"
        ) from None
    if width < 32 or height < 32:
        raise ConfigError(
            f"synthetic dataset: image_size must be at least 32x32, got {image_size!r}"
        )
    return width, height


# --------------------------------------------------------------------------------------------
# Rendering


def _render_image(
    rng: np.random.Generator, width: int, height: int, max_people: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw one image and return it with the COCO annotation fields of its annotated people.

    An id map (which person, or occluder, owns each pixel) is drawn alongside the image with the
    same primitives; a keypoint is visible exactly when its own person still owns its pixel once
    everything has been drawn.
    """
    image = _background(rng, width, height)
    id_map = np.zeros((height, width), np.uint8)

    n_people = int(rng.integers(1, max_people + 1))
    people: list[dict[str, Any]] = []
    for _ in range(n_people):
        taken_x = [float(q["keypoints"][11:13, 0].mean()) for q in people]
        people.append(_sample_person(rng, width, height, taken_x))
    people.sort(key=lambda p: p["scale"])  # small = far away = drawn first
    for pid, person in enumerate(people, start=1):
        _draw_person(image, id_map, person, pid)

    if rng.random() < 0.4:
        _draw_occluders(rng, image, id_map, people, width, height)

    annotations = []
    for pid, person in enumerate(people, start=1):
        ann = _annotate(person, id_map, pid, width, height)
        if ann is not None:
            annotations.append(ann)
    return image, annotations


def _random_clutter_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """Mostly muted colours: saturated strokes stay (mostly) a property of people."""
    h, s, v = rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.15, 1.0)
    return _hsv_bgr(h, s, v)


def _hsv_bgr(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (b * 255.0, g * 255.0, r * 255.0)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Gradient + blotchy noise + random shapes: a flat background would make detection trivial."""
    c0 = np.array(_random_clutter_colour(rng))
    c1 = np.array(_random_clutter_colour(rng))
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32) * (height / width)
    t = np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # Low-frequency blotches (upsampled coarse noise) plus fine sensor-like noise.
    coarse = rng.normal(0, 25, size=(int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    img += cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, rng.uniform(2, 10), size=img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)

    for _ in range(int(rng.integers(6, 18))):
        colour = _random_clutter_colour(rng)
        kind = rng.integers(3)
        if kind == 0:
            x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
            w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
            cv2.rectangle(img, _pt(x0, y0), _pt(x0 + w, y0 + h), colour, -1, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            c = _pt(rng.uniform(0, width), rng.uniform(0, height))
            r = int(rng.uniform(0.02, 0.15) * min(width, height) * _ONE)
            cv2.circle(img, c, r, colour, -1, cv2.LINE_AA, _SHIFT)
        else:
            p0 = _pt(rng.uniform(0, width), rng.uniform(0, height))
            p1 = _pt(rng.uniform(0, width), rng.uniform(0, height))
            cv2.line(img, p0, p1, colour, int(rng.integers(1, 5)), cv2.LINE_AA, _SHIFT)
    return img


def _pt(x: float, y: float) -> tuple[int, int]:
    """Fixed-point point for cv2's ``shift`` argument, so joints are not snapped to pixels."""
    return (int(round(x * _ONE)), int(round(y * _ONE)))


def _sample_person(
    rng: np.random.Generator, width: int, height: int, taken_x: list[float]
) -> dict[str, Any]:
    """Sample a pose: 17 keypoints plus what is needed to draw the head and limbs.

    ``taken_x`` are the hip-centre x of people already in the image; the new person goes to the
    best of three candidate positions, so people overlap sometimes (as in COCO) but three
    figures stacked on one spot, where nothing is learnable, are rare.
    """
    scale = rng.uniform(0.35, 0.9)  # fraction of image height from head top to ankles
    unit = scale * height / _BODY_LEN  # pixels per body-height unit

    # Head yaw decides facing: |yaw| < 90 deg faces the camera (person's left on image right).
    if rng.random() < 0.8:
        yaw = rng.uniform(-70, 70)
    else:
        yaw = rng.uniform(115, 245)
    yaw = np.deg2rad(yaw)
    cos_yaw = np.cos(yaw)
    left_sign = 1.0 if cos_yaw >= 0 else -1.0  # image x direction of the person's left side
    body_width = max(abs(cos_yaw), 0.3)  # shoulders/hips narrow as the body turns
    lean = np.deg2rad(rng.normal(0, 6))
    roll = np.deg2rad(rng.normal(0, 4))  # whole-body tilt (camera roll, slope)

    def direction(angle_deg: float, side: float) -> np.ndarray:
        """Unit vector for a limb angle measured from straight down, positive = away from body."""
        a = np.deg2rad(angle_deg)
        return np.array([side * np.sin(a), np.cos(a)])

    def rot(v: np.ndarray, a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])

    kp = np.zeros((_NUM_KPT, 2))
    neck = rot(np.array([0.0, -_TORSO]), lean)
    head = neck + rot(np.array([0.0, -_NECK]), lean + np.deg2rad(rng.normal(0, 8)))
    both_arms_up = rng.random() < 0.12
    legs_apart = rng.random() < 0.3
    for side_idx in (0, 1):  # 0: left, 1: right
        sx = left_sign if side_idx == 0 else -left_sign
        shoulder = neck + rot(np.array([sx * _SHOULDER_HALF * body_width, 0.0]), lean)
        hip = np.array([sx * _HIP_HALF * body_width, 0.0])

        r = rng.random()
        if both_arms_up or r < 0.2:
            upper = rng.uniform(100, 170)  # raised
        elif r < 0.3:
            upper = rng.uniform(-25, 5)  # across the body
        else:
            upper = rng.uniform(5, 55)
        if rng.random() < 0.6:  # clearly bent elbow, either way
            bend = rng.uniform(0, 110) * rng.choice([-1.0, 1.0])
        else:
            bend = rng.uniform(-15, 15)
        elbow = shoulder + _UPPER_ARM * rot(direction(upper, sx), lean)
        wrist = elbow + _FOREARM * rot(direction(upper + bend, sx), lean)

        thigh = rng.uniform(12, 35) if legs_apart else rng.uniform(-6, 12)
        if rng.random() < 0.8:
            knee_bend = rng.uniform(-15, 15)
        else:
            knee_bend = rng.uniform(15, 50) * rng.choice([-1.0, 1.0])
        knee = hip + _THIGH * direction(thigh, sx)
        ankle = knee + _SHIN * direction(thigh + knee_bend, sx)

        kp[5 + side_idx], kp[7 + side_idx], kp[9 + side_idx] = shoulder, elbow, wrist
        kp[11 + side_idx], kp[13 + side_idx], kp[15 + side_idx] = hip, knee, ankle

    # Face: rotate the head sphere by yaw, project orthographically (x, y), keep depth z.
    c, s = np.cos(yaw), np.sin(yaw)
    fx = _FACE_3D[:, 0] * c + _FACE_3D[:, 2] * s
    fz = -_FACE_3D[:, 0] * s + _FACE_3D[:, 2] * c
    face_xy = np.stack([fx, _FACE_3D[:, 1]], axis=1) * _HEAD_R
    face_xy = np.array([rot(v, lean) for v in face_xy])
    kp[0:5] = head + face_xy
    face_hidden = fz < _FACE_VISIBLE_Z  # behind the head: labelled (v=1) but not drawn

    # Global placement: roll about the hip centre, scale to pixels, translate.
    half_h = scale * height
    candidates = rng.uniform(0.05, 0.95, size=3) * width
    if taken_x:
        gaps = np.abs(candidates[:, None] - np.asarray(taken_x)[None, :]).min(1)
        cx = float(candidates[np.argmax(gaps)])
    else:
        cx = float(candidates[0])
    y_lo, y_hi = 0.45 * half_h, height - 0.40 * half_h
    cy = rng.uniform(y_lo, y_hi) if y_hi > y_lo else height / 2 + rng.normal(0, 0.1 * height)
    offset = np.array([cx, cy])
    kp = np.array([rot(v, roll) for v in kp]) * unit + offset
    head_px = rot(head, roll) * unit + offset

    hue = {k: (v + rng.normal(0, 0.015)) % 1.0 for k, v in _HUE.items()}
    skin = np.clip(_SKIN_BGR[rng.integers(len(_SKIN_BGR))] + rng.normal(0, 10, 3), 0, 255)
    return {
        "scale": scale,
        "keypoints": kp,
        "head": head_px,
        "head_r": _HEAD_R * unit,
        "thickness": max(2, int(round(0.035 * scale * height))),
        "face_hidden": face_hidden,
        "left_far": bool(np.sin(yaw) * left_sign > 0),  # turned towards its left = left is far
        "hue": hue,
        "skin": tuple(float(v) for v in skin),
    }


# (upper, middle, lower) joint of each limb, 0-based COCO indices; the name is also the hue key
_LIMBS = {
    "left_arm": (5, 7, 9),
    "right_arm": (6, 8, 10),
    "left_leg": (11, 13, 15),
    "right_leg": (12, 14, 16),
}


def _draw_person(image: np.ndarray, id_map: np.ndarray, p: dict[str, Any], pid: int) -> None:
    """Draw one stick person into the image and, with the same geometry, its id into ``id_map``."""
    kp = p["keypoints"]
    t = p["thickness"]
    hue = p["hue"]

    def line(a: np.ndarray, b: np.ndarray, colour: tuple[float, float, float], thick: int) -> None:
        cv2.line(image, _pt(*a), _pt(*b), colour, thick, cv2.LINE_AA, _SHIFT)
        cv2.line(id_map, _pt(*a), _pt(*b), pid, thick, cv2.LINE_8, _SHIFT)

    def disc(c: np.ndarray, r: float, colour: tuple[float, float, float]) -> None:
        rr = max(1, int(round(r * _ONE)))
        cv2.circle(image, _pt(*c), rr, colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(id_map, _pt(*c), rr, pid, -1, cv2.LINE_8, _SHIFT)

    def limb(name: str) -> None:
        a, b, c = _LIMBS[name]
        h = hue[name]
        line(kp[a], kp[b], _hsv_bgr(h, 0.9, 1.0), t)
        line(kp[b], kp[c], _hsv_bgr(h, 0.9, 0.7), t)
        # Darker joint dots make elbows/knees/wrists/ankles locatable along a straight limb.
        for j in (b, c):
            disc(kp[j], 0.75 * t, _hsv_bgr(h, 1.0, 0.4))

    far, near = ("left", "right") if p["left_far"] else ("right", "left")
    limb(f"{far}_leg")
    limb(f"{far}_arm")

    # Torso: filled quad (shoulders, hips) with a brighter outline along the COCO torso edges.
    torso_fill = _hsv_bgr(hue["torso"], 0.8, 0.55)
    quad = np.array([_pt(*kp[i]) for i in (5, 6, 12, 11)], np.int32)
    cv2.fillPoly(image, [quad], torso_fill, cv2.LINE_AA, _SHIFT)
    cv2.fillPoly(id_map, [quad], pid, cv2.LINE_8, _SHIFT)
    edge = _hsv_bgr(hue["torso"], 0.9, 0.95)
    for a, b in ((5, 6), (6, 12), (12, 11), (11, 5)):
        line(kp[a], kp[b], edge, t)
    for j in (5, 6, 11, 12):
        disc(kp[j], 0.75 * t, _hsv_bgr(hue["torso"], 1.0, 0.35))

    limb(f"{near}_leg")
    limb(f"{near}_arm")

    # Neck and head.
    neck = (kp[5] + kp[6]) / 2
    line(neck, p["head"], edge, t)
    r = p["head_r"]
    disc(p["head"], r, p["skin"])
    skin = np.array(p["skin"])
    hidden = p["face_hidden"]
    mark = max(1.0, 0.14 * r)
    if not hidden[3]:
        disc(kp[3], 1.6 * mark, tuple(skin * 0.6))
    if not hidden[4]:
        disc(kp[4], 1.6 * mark, tuple(skin * 0.6))
    for j in (1, 2):
        if not hidden[j]:
            disc(kp[j], mark, (30.0, 20.0, 20.0))
    if not hidden[0]:
        disc(kp[0], 1.2 * mark, (60.0, 60.0, 200.0))


def _draw_occluders(
    rng: np.random.Generator,
    image: np.ndarray,
    id_map: np.ndarray,
    people: list[dict[str, Any]],
    width: int,
    height: int,
) -> None:
    """Opaque boxes placed over people (not just anywhere), so v=1 actually occurs."""
    for _ in range(int(rng.integers(1, 3))):
        target = people[int(rng.integers(len(people)))]
        centre = target["keypoints"][int(rng.integers(_NUM_KPT))]
        size = target["scale"] * height * rng.uniform(0.12, 0.35, size=2)
        x0, y0 = centre - size / 2
        x1, y1 = centre + size / 2
        colour = _hsv_bgr(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 1.0))
        cv2.rectangle(image, _pt(x0, y0), _pt(x1, y1), colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.rectangle(id_map, _pt(x0, y0), _pt(x1, y1), _OCCLUDER_ID, -1, cv2.LINE_8, _SHIFT)


def _annotate(
    p: dict[str, Any], id_map: np.ndarray, pid: int, width: int, height: int
) -> dict[str, Any] | None:
    """COCO fields for one person, or None when too little of it is in the image to label."""
    kp = np.round(p["keypoints"], 2)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= height - 1)
    if inside.sum() < 3:
        return None
    px = np.clip(np.round(kp[:, 0]).astype(int), 0, width - 1)
    py = np.clip(np.round(kp[:, 1]).astype(int), 0, height - 1)
    owned = id_map[py, px] == pid
    owned[:5] &= ~p["face_hidden"]
    v = np.where(inside, np.where(owned, 2, 1), 0)
    kp[~inside] = 0.0

    # Box: labelled keypoints plus the head disc and half a stroke, padded 10% per side.
    pts = kp[inside]
    if inside[:5].any():
        hx, hy = p["head"]
        r = p["head_r"]
        pts = np.concatenate([pts, [[hx - r, hy - r], [hx + r, hy + r]]])
    lo = pts.min(0) - p["thickness"] / 2
    hi = pts.max(0) + p["thickness"] / 2
    pad = 0.1 * (hi - lo)
    lo = np.maximum(lo - pad, 0.0)
    hi = np.minimum(hi + pad, [width, height])
    w, h = hi - lo
    if w < 2 or h < 2:
        return None
    x, y = round(float(lo[0]), 2), round(float(lo[1]), 2)
    w, h = round(float(w), 2), round(float(h), 2)
    w, h = min(w, width - x), min(h, height - y)  # rounding must not push the box out

    keypoints: list[float] = []
    for (kx, ky), vis in zip(kp.tolist(), v.tolist()):
        keypoints += [kx, ky, int(vis)]
    return {
        "category_id": 1,
        "bbox": [x, y, w, h],
        "area": round(0.6 * w * h, 2),
        "iscrowd": 0,
        "num_keypoints": int((v > 0).sum()),
        "keypoints": keypoints,
        # Box polygon: some COCO tools (annToMask, crowd handling) expect a segmentation field.
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
    }
