"""PCK on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsjp.evaluation.pck import pck


def test_pck_hand_computed():
    gt = np.zeros((2, 4, 2))
    pred = np.zeros((2, 4, 2))
    # person 0: box 100 x 50 -> tolerance 0.1 * 100 = 10 px
    pred[0, 0] = [3, 4]  # error 5  -> hit
    pred[0, 1] = [6, 8]  # error 10 -> not *under* 10: miss
    pred[0, 2] = [20, 0]  # error 20 -> miss
    pred[0, 3] = [500, 500]  # unlabelled: ignored
    # person 1: box 30 x 200 -> tolerance 20 px
    pred[1, 0] = [0, 19.9]  # hit
    pred[1, 1] = [12, 16]  # error 20 -> miss
    vis = np.array([[True, True, True, False], [True, True, False, False]])
    boxes = np.array([[0, 0, 100, 50], [10, 10, 30, 200]], dtype=float)
    assert pck(pred, gt, vis, boxes) == pytest.approx(2 / 5)
    assert pck(pred, gt, vis, boxes, thr=0.15) == pytest.approx(4 / 5)  # 15 px and 30 px: only 20 px misses
    assert pck(pred, gt, vis, boxes, thr=0.25) == 1.0


def test_pck_nan_safe():
    gt = np.zeros((1, 3, 2))
    pred = np.zeros((1, 3, 2))
    pred[0, 0] = [np.nan, 0]  # NaN prediction: a miss
    gt[0, 2] = [np.nan, np.nan]  # NaN ground truth: not labelled
    vis = np.ones((1, 3), dtype=bool)
    boxes = np.array([[0, 0, 10, 10]], dtype=float)
    assert pck(pred, gt, vis, boxes) == pytest.approx(0.5)


def test_pck_nothing_labelled_is_nan():
    z = np.zeros((2, 3, 2))
    assert math.isnan(pck(z, z, np.zeros((2, 3), dtype=bool), np.ones((2, 4))))


def test_pck_shape_errors():
    z = np.zeros((2, 3, 2))
    with pytest.raises(ValueError):
        pck(z, z, np.ones((2, 4), dtype=bool), np.ones((2, 4)))
    with pytest.raises(ValueError):
        pck(z, z[:1], np.ones((2, 3), dtype=bool), np.ones((2, 4)))
