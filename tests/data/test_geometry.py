import cv2
import numpy as np
import pytest

from hsjp.data.annotations import flip_pairs_from_names
from hsjp.data.geometry import (
    affine_matrix,
    box_to_center_scale,
    flip_heatmaps,
    flip_keypoints,
    invert_affine,
    transform_points,
    warp,
)
from hsjp.data.synthetic import COCO_KEYPOINT_NAMES


def _dot_image(points, size=(320, 240)):
    image = np.zeros((size[1], size[0]), np.float32)
    for x, y in points:
        cv2.circle(image, (int(round(x)), int(round(y))), 3, 1.0, -1)
    return image


@pytest.mark.parametrize("rotation", [0.0, 30.0, -45.0])
def test_keypoints_follow_the_affine_warp(rotation):
    point = np.array([[150.0, 110.0]])
    center, scale = box_to_center_scale((100, 50, 100, 140), aspect_ratio=0.75)
    matrix = affine_matrix(center, scale * 1.2, rotation, (96, 128))
    crop = warp(_dot_image(point), matrix, (96, 128))
    ys, xs = np.nonzero(crop > 0.5)
    found = np.array([(crop[ys, xs] * xs).sum(), (crop[ys, xs] * ys).sum()]) / crop[ys, xs].sum()
    expected = transform_points(point, matrix)[0]
    assert np.abs(found - expected).max() < 0.5
    assert np.allclose(transform_points(transform_points(point, matrix), invert_affine(matrix)), point, atol=1e-3)


def test_box_to_center_scale_keeps_aspect_and_pads():
    center, scale = box_to_center_scale((10, 20, 30, 100), aspect_ratio=0.75, padding=1.25)
    assert center.tolist() == [25.0, 70.0]
    assert scale[0] / scale[1] == pytest.approx(0.75)
    assert scale[1] == pytest.approx(125.0)


def test_flip_pairs_follow_names():
    pairs = flip_pairs_from_names(list(COCO_KEYPOINT_NAMES))
    assert pairs == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]


def test_flipped_keypoints_land_on_flipped_image_content():
    names = ["nose", "left_wrist", "right_wrist"]
    kps = np.array([[50, 40, 2], [20, 60, 2], [80, 65, 1]], dtype=np.float32)
    image = _dot_image(kps[:, :2], size=(100, 80))
    flipped_image = image[:, ::-1]
    flipped = flip_keypoints(kps, 100, flip_pairs_from_names(names))
    # labels swap, so the new 'left_wrist' is the mirrored old right wrist
    assert flipped[1, 0] == pytest.approx(100 - 1 - 80) and flipped[1, 2] == 1
    for x, y, _ in flipped:
        assert flipped_image[int(y), int(x)] > 0.5


def test_flip_heatmaps_swaps_channels_and_mirrors():
    hm = np.zeros((3, 4, 5), np.float32)
    hm[1, 2, 0] = 1  # left keypoint at x=0
    out = flip_heatmaps(hm, [(1, 2)])
    assert out[2, 2, 4] == 1 and out[1].max() == 0
