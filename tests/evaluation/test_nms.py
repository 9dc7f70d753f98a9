"""OKS-NMS and rescoring as in mmpose / official HRNet."""

from __future__ import annotations

import numpy as np
import pytest

from hsjp.evaluation.metrics import COCO_SIGMAS
from hsjp.evaluation.nms import oks_iou, oks_nms, rescore


def _mmpose_oks_iou(g, d, a_g, a_d, sigmas, vis_thr=None):
    """mmpose's loop (mmpose/evaluation/functional/nms.py), transcribed as the reference."""
    vars_ = (sigmas * 2) ** 2
    xg, yg, vg = g[0::3], g[1::3], g[2::3]
    ious = np.zeros(len(d))
    for n_d in range(len(d)):
        xd, yd, vd = d[n_d, 0::3], d[n_d, 1::3], d[n_d, 2::3]
        dx, dy = xd - xg, yd - yg
        e = (dx**2 + dy**2) / vars_ / ((a_g + a_d[n_d]) / 2 + np.spacing(1)) / 2
        if vis_thr is not None:
            ind = list((vg > vis_thr) & (vd > vis_thr))
            e = e[ind]
        ious[n_d] = np.sum(np.exp(-e)) / len(e) if len(e) != 0 else 0.0
    return ious


def _pose(rng, x0, y0, size=100.0, k=17):
    p = np.zeros((k, 3))
    p[:, 0] = x0 + rng.uniform(0, size, k)
    p[:, 1] = y0 + rng.uniform(0, size * 2, k)
    p[:, 2] = rng.uniform(0.3, 1.0, k)
    return p


@pytest.mark.parametrize("vis_thr", [None, 0.5])
def test_oks_iou_matches_mmpose_reference(vis_thr):
    rng = np.random.default_rng(0)
    g = _pose(rng, 50, 50)
    d = np.stack([g + np.r_[rng.normal(0, s, 2), 0] * np.ones((17, 1)) + rng.normal(0, s, (17, 3)) * [1, 1, 0]
                  for s in (0.0, 2.0, 10.0, 40.0)])
    d[:, :, 2] = rng.uniform(0, 1, (4, 17))
    areas = rng.uniform(5000, 30000, 4)
    got = oks_iou(g, d, 20000.0, areas, COCO_SIGMAS, vis_thr)
    want = _mmpose_oks_iou(g.reshape(-1), d.reshape(4, -1), 20000.0, areas, COCO_SIGMAS, vis_thr)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.shape == (4,)
    if vis_thr is None:
        assert got[0] == pytest.approx(1.0)
    assert np.all(np.diff(got) < 0)  # more noise, less overlap
    # flattened inputs are accepted too
    np.testing.assert_allclose(oks_iou(g.reshape(-1), d.reshape(4, -1), 20000.0, areas, COCO_SIGMAS, vis_thr), got)


def test_oks_iou_no_common_confident_keypoint_is_zero():
    g = np.zeros((3, 3))
    d = np.zeros((1, 3, 3))
    assert oks_iou(g, d, 100.0, np.array([100.0]), np.full(3, 0.1), vis_thr=0.5)[0] == 0.0


def test_oks_nms_suppresses_duplicates_keeps_distinct_in_score_order():
    rng = np.random.default_rng(1)
    a = _pose(rng, 0, 0)
    b = _pose(rng, 400, 0)
    c = _pose(rng, 0, 400)
    dup = lambda p: p + np.c_[rng.normal(0, 0.5, (17, 2)), np.zeros(17)]  # noqa: E731
    kpts = np.stack([dup(a), a, b, dup(a), c, dup(b)])
    scores = np.array([0.5, 0.9, 0.8, 0.7, 0.3, 0.85])
    areas = np.full(6, 100.0 * 200.0)
    keep = oks_nms(kpts, scores, areas, thr=0.9)
    assert keep == [1, 5, 4]  # best copy of a, best copy of b, then c
    assert all(isinstance(i, int) for i in keep)
    # a threshold of 1 suppresses nothing: everything comes back sorted by score
    assert oks_nms(kpts, scores, areas, thr=1.0) == [1, 5, 2, 3, 0, 4]


def test_oks_nms_edge_cases():
    assert oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0)) == []
    p = np.ones((1, 17, 3))
    assert oks_nms(p, np.array([0.2]), np.array([10.0])) == [0]
    # equal scores: input order, and exact duplicates still suppressed
    assert oks_nms(np.concatenate([p, p]), np.array([0.5, 0.5]), np.array([10.0, 10.0])) == [0]
    with pytest.raises(ValueError):
        oks_nms(np.ones((2, 17, 3)), np.ones(3), np.ones(2))


def test_rescore_arithmetic():
    ks = np.array([[0.9, 0.1, 0.5], [0.1, 0.1, 0.2], [0.4, 0.6, 0.8]])
    boxes = np.array([0.8, 0.9, 0.5])
    got = rescore(ks, boxes, kpt_thr=0.2)
    # row 0: mean(0.9, 0.5) * 0.8; row 1: nothing strictly above 0.2 -> 0; row 2: mean of all * 0.5
    np.testing.assert_allclose(got, [0.7 * 0.8, 0.0, 0.6 * 0.5])
    np.testing.assert_allclose(rescore(ks, boxes, kpt_thr=0.0), ks.mean(axis=1) * boxes)
    assert np.all(np.isfinite(got))
