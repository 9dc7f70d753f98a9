import numpy as np
import pytest

from hsjp.heatmaps import HeatmapCodec, argmax_quarter_offset, gaussian_heatmaps


@pytest.mark.parametrize("size", [((192, 256), (48, 64)), ((96, 128), (24, 32)), ((288, 384), (72, 96))])
def test_round_trip_is_sub_pixel(size):
    codec = HeatmapCodec(*size, sigma=2.0)
    rng = np.random.default_rng(0)
    kps = rng.uniform([0, 0], (np.array(size[1]) - 0.51) * codec.stride, size=(500, 2)).astype(np.float32)
    heatmaps, weights = codec.encode(kps, np.ones(500))
    decoded, scores = codec.decode(heatmaps)
    err_heatmap_px = np.abs(decoded - kps) / codec.stride
    assert weights.min() == 1
    # argmax alone errs up to 0.5 heatmap px; the quarter shift toward the higher neighbour halves it
    inner = (kps / codec.stride >= 1).all(1) & (kps / codec.stride <= np.array(size[1]) - 2).all(1)
    assert err_heatmap_px[inner].max() <= 0.25 + 1e-4
    assert err_heatmap_px.max() <= 0.5 + 1e-4  # on the border only the argmax is left
    assert scores.min() > 0.9


def test_unlabelled_and_outside_keypoints_get_zero_weight_and_empty_maps():
    codec = HeatmapCodec((96, 128), (24, 32), 2.0)
    kps = np.array([[40, 50], [40, 50], [-30, 50], [40, 500]], dtype=np.float32)
    heatmaps, weights = codec.encode(kps, np.array([2, 0, 2, 1]))
    assert weights.tolist() == [1, 0, 0, 0]
    assert heatmaps[1:].max() == 0 and heatmaps[0].max() > 0.9


def test_gaussian_peak_and_shape():
    hm = gaussian_heatmaps(np.array([[3.0, 5.0]]), (8, 10), sigma=1.5)
    assert hm.shape == (1, 10, 8)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (5, 3)
    assert hm.max() == pytest.approx(1.0)


def test_batch_decode_shapes():
    coords, scores = argmax_quarter_offset(np.random.default_rng(0).random((2, 3, 8, 6)))
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
