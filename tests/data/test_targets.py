"""Training targets: the classification jigsaw's label is the index of the permutation applied."""

import numpy as np
import pytest

from hsjp.codecs import jigsaw_codec
from hsjp.config import load_config
from hsjp.data.targets import PuzzleClassTarget, PuzzleTarget


def _cfg(*overrides):
    return load_config(None, ["data.input_size=[64,64]", *overrides])


@pytest.mark.parametrize("grid, size", [("[2,2]", 23), ("[4,3]", 100), ("[3,2]", 100)])
def test_classification_jigsaw_draws_from_its_fixed_set(grid, size):
    codec = jigsaw_codec(_cfg("task=jigsaw_cls", f"jigsaw.grid={grid}", "data.input_size=[96,96]"))
    assert len(codec.permutation_table) == size
    # the heatmap pretext keeps sampling uniformly unless a set is asked for
    assert jigsaw_codec(_cfg(f"jigsaw.grid={grid}", "data.input_size=[96,96]")).permutation_table is None


def test_label_is_the_index_of_the_permutation_applied():
    codec = jigsaw_codec(_cfg("task=jigsaw_cls", "jigsaw.grid=[2,2]"))
    crop = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    labels = set()
    for seed in range(40):
        sample = PuzzleClassTarget(codec)(crop, np.zeros((0, 3)), np.random.default_rng(seed))
        perm = codec.permutation_table[sample["label"]]
        np.testing.assert_array_equal(perm, sample["permutation"])
        np.testing.assert_array_equal(codec.restore(sample["image"], perm), crop)
        labels.add(sample["label"])
    assert len(labels) > 10  # draws spread over the set
    # the same generator state gives the heatmap pretext the same puzzle: the two differ only in the label
    heat = PuzzleTarget(codec)(crop, np.zeros((0, 3)), np.random.default_rng(7))
    cls = PuzzleClassTarget(codec)(crop, np.zeros((0, 3)), np.random.default_rng(7))
    np.testing.assert_array_equal(heat["image"], cls["image"])


def test_permutation_outside_the_set_has_no_label():
    codec = jigsaw_codec(_cfg("task=jigsaw_cls", "jigsaw.grid=[2,2]", "jigsaw.permutations=3"))
    outside = next(p for p in ([1, 0, 2, 3], [0, 1, 3, 2], [3, 2, 1, 0], [1, 2, 3, 0])
                   if not (codec.permutation_table == p).all(axis=1).any())
    with pytest.raises(ValueError, match="not in the codec's set"):
        codec.permutation_index(np.array(outside))
