"""Tests for hsjp.jigsaw: the heatmap-style jigsaw puzzle codec."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsjp.errors import ConfigError
from hsjp.jigsaw import (
    JigsawCodec,
    cell_scores,
    min_hamming_distance,
    permutation_set,
    placement_accuracy,
    puzzle_accuracy,
)

GRIDS = [(2, 2), (3, 3), (4, 3), (4, 4)]
SIZES = [(192, 256), (96, 128), (96, 96), (144, 144)]  # (w, h); heatmaps at 1/4


def _divides(grid: tuple[int, int], size: tuple[int, int]) -> bool:
    rows, cols = grid
    w, h = size
    return all(
        a % cols == 0 and b % rows == 0 for a, b in ((w, h), (w // 4, h // 4))
    )


VALID = [(g, s) for g in GRIDS for s in SIZES if _divides(g, s)]
INVALID = [(g, s) for g in GRIDS for s in SIZES if not _divides(g, s)]


def _codec(grid, size, **kw) -> JigsawCodec:
    return JigsawCodec(grid=grid, input_size=size, heatmap_size=(size[0] // 4, size[1] // 4), **kw)


def _image(codec: JigsawCodec, rng: np.random.Generator, channels: int | None = 3, dtype=np.uint8):
    w, h = codec.input_size
    shape = (h, w) if channels is None else (h, w, channels)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 256, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def _peak_cells(codec: JigsawCodec, heatmaps: np.ndarray) -> np.ndarray:
    k, h, w = heatmaps.shape
    idx = heatmaps.reshape(k, -1).argmax(axis=1)
    y, x = idx // w, idx % w
    cw, ch = codec.cell_size
    return (y // ch) * codec.grid[1] + x // cw


def test_parametrisation_covers_every_grid():
    assert {g for g, _ in VALID} == set(GRIDS)
    assert INVALID  # (3, 3) at 192x256 and 96x128 must be rejected


@pytest.mark.parametrize("grid,size", VALID)
def test_encode_peaks_decode_and_restore(grid, size):
    codec = _codec(grid, size)
    rng = np.random.default_rng(hash((grid, size)) % 2**32)
    w, h = size
    k = grid[0] * grid[1]
    assert codec.num_patches == k
    assert codec.patch_size == (w // grid[1], h // grid[0])
    for _ in range(3):
        image = _image(codec, rng)
        shuffled, heatmaps, perm = codec.encode(image, rng)
        assert shuffled.shape == image.shape and shuffled.dtype == image.dtype
        assert heatmaps.shape == (k, h // 4, w // 4) and heatmaps.dtype == np.float32
        assert perm.shape == (k,) and perm.dtype == np.int64
        assert sorted(perm.tolist()) == list(range(k))
        # every channel peaks (value 1) inside the cell where its patch went
        np.testing.assert_array_equal(_peak_cells(codec, heatmaps), perm)
        # peak 1 at the cell centre; it falls between pixels for even cells, so sampled >= 0.93
        assert np.all(heatmaps.max(axis=(1, 2)) > 0.93)
        np.testing.assert_array_equal(codec.decode(heatmaps), perm)
        np.testing.assert_array_equal(codec.restore(shuffled, perm), image)
        # cell perm[k] of the shuffled image is exactly original patch k
        pw, ph = codec.patch_size
        for src in range(k):
            dst = perm[src]
            r0, c0 = divmod(src, grid[1])
            r1, c1 = divmod(int(dst), grid[1])
            np.testing.assert_array_equal(
                shuffled[r1 * ph:(r1 + 1) * ph, c1 * pw:(c1 + 1) * pw],
                image[r0 * ph:(r0 + 1) * ph, c0 * pw:(c0 + 1) * pw],
            )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 1, 3])
def test_restore_exact_for_dtypes_and_layouts(dtype, channels):
    codec = _codec((4, 3), (96, 128))
    rng = np.random.default_rng(1)
    image = _image(codec, rng, channels, dtype)
    shuffled, _, perm = codec.encode(image, rng)
    assert shuffled.shape == image.shape and shuffled.dtype == image.dtype
    assert not np.array_equal(shuffled, image)
    restored = codec.restore(shuffled, perm)
    assert restored.dtype == image.dtype
    np.testing.assert_array_equal(restored, image)


def test_cell_centres_use_pixel_centre_convention():
    codec = JigsawCodec(grid=(2, 2), input_size=(16, 16), heatmap_size=(4, 4))
    np.testing.assert_allclose(codec.cell_centers, [[0.5, 0.5], [2.5, 0.5], [0.5, 2.5], [2.5, 2.5]])
    codec = JigsawCodec(grid=(4, 3), input_size=(192, 256), heatmap_size=(48, 64))
    np.testing.assert_allclose(codec.cell_centers[0], [7.5, 7.5])
    np.testing.assert_allclose(codec.cell_centers[11], [2.5 * 16 - 0.5, 3.5 * 16 - 0.5])


@pytest.mark.parametrize("grid,size", INVALID)
def test_sizes_that_do_not_divide_raise(grid, size):
    with pytest.raises(ConfigError) as err:
        _codec(grid, size)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{grid[0]}x{grid[1]}" in msg
    assert f"{size[0]}x{size[1]}" in msg or f"{size[0] // 4}x{size[1] // 4}" in msg


def test_config_error_messages():
    with pytest.raises(ConfigError, match=r"grid 3x3 does not divide input 192x256 .*height 256"):
        JigsawCodec(grid=(3, 3), input_size=(192, 256), heatmap_size=(48, 64))
    with pytest.raises(ConfigError, match=r"width 100 is not a multiple of 3 cols"):
        JigsawCodec(grid=(4, 3), input_size=(100, 128), heatmap_size=(25, 32))
    with pytest.raises(ConfigError, match=r"heatmap 30x32"):
        JigsawCodec(grid=(4, 3), input_size=(96, 128), heatmap_size=(30, 32))  # 1/3.2 != 1/4
    with pytest.raises(ConfigError, match=r"heatmap 10x8"):  # divides but 16 rows x 20 cols
        JigsawCodec(grid=(2, 2), input_size=(192, 256), heatmap_size=(10, 8))
    with pytest.raises(ConfigError, match="at least 2 patches"):
        JigsawCodec(grid=(1, 1), input_size=(96, 96), heatmap_size=(24, 24))
    with pytest.raises(ConfigError, match="rows and cols >= 1"):
        JigsawCodec(grid=(0, 2), input_size=(96, 96), heatmap_size=(24, 24))
    with pytest.raises(ConfigError, match="gap 32"):
        JigsawCodec(grid=(4, 3), input_size=(96, 128), heatmap_size=(24, 32), gap=32)
    with pytest.raises(ConfigError, match="exceeds the 23 non-identity"):
        JigsawCodec(grid=(2, 2), input_size=(96, 96), heatmap_size=(24, 24), permutations=24)
    with pytest.raises(ConfigError, match="color_jitter"):
        JigsawCodec(grid=(2, 2), input_size=(96, 96), heatmap_size=(24, 24), color_jitter=1.5)
    with pytest.raises(ConfigError, match="sigma"):
        JigsawCodec(grid=(2, 2), input_size=(96, 96), heatmap_size=(24, 24), sigma=0)
    with pytest.raises(ConfigError, match="two integers"):
        JigsawCodec(grid=(2, 2, 2), input_size=(96, 96), heatmap_size=(24, 24))
    # a 1x2 grid is still a (tiny) puzzle
    JigsawCodec(grid=(1, 2), input_size=(96, 96), heatmap_size=(24, 24))


def test_lists_from_configs_become_tuples():
    codec = JigsawCodec(grid=[4, 3], input_size=[192, 256], heatmap_size=[48, 64])
    assert codec.grid == (4, 3) and codec.input_size == (192, 256)
    same = JigsawCodec(grid=(4, 3), input_size=(192, 256), heatmap_size=(48, 64))
    assert codec == same and hash(codec) == hash(same)


def test_identity_never_drawn_unless_allowed():
    codec = JigsawCodec(grid=(2, 2), input_size=(32, 32), heatmap_size=(8, 8))
    rng = np.random.default_rng(0)
    seen = {tuple(codec.sample_permutation(rng)) for _ in range(3000)}
    assert (0, 1, 2, 3) not in seen
    assert len(seen) == 23  # every other permutation does occur
    image = np.zeros((32, 32), np.uint8)
    for _ in range(200):
        assert not np.array_equal(codec.encode(image, rng)[2], np.arange(4))

    allowed = JigsawCodec(
        grid=(2, 2), input_size=(32, 32), heatmap_size=(8, 8), allow_identity=True
    )
    seen = {tuple(allowed.sample_permutation(rng)) for _ in range(3000)}
    assert len(seen) == 24


def test_encode_is_reproducible_from_the_generator():
    codec = _codec((4, 3), (96, 128), gap=4, color_jitter=0.2)
    image = _image(codec, np.random.default_rng(0))
    a = codec.encode(image, np.random.default_rng(7))
    b = codec.encode(image, np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_permutation_set_properties():
    perms = permutation_set(9, 50, seed=3)
    assert perms.shape == (50, 9) and perms.dtype == np.int64
    assert len({tuple(p) for p in perms}) == 50
    assert not np.any(np.all(perms == np.arange(9), axis=1))
    assert np.all(np.sort(perms, axis=1) == np.arange(9))
    # deterministic, cached (same object) and read-only so the cache cannot be corrupted
    assert permutation_set(9, 50, seed=3) is perms
    assert not perms.flags.writeable
    np.testing.assert_array_equal(permutation_set.__wrapped__(9, 50, 3), perms)
    assert not np.array_equal(permutation_set(9, 50, seed=4), perms)

    rng = np.random.default_rng(0)
    random_set = np.stack([rng.permutation(9) for _ in range(50)])
    greedy = min_hamming_distance(perms)
    assert greedy > min_hamming_distance(random_set)
    assert greedy >= 7


def test_permutation_set_small_k_uses_every_permutation():
    perms = permutation_set(4, 23)
    assert len({tuple(p) for p in perms}) == 23
    assert min_hamming_distance(permutation_set(4, 4)) >= 4  # 4 pairwise-derangement perms exist
    with pytest.raises(ConfigError):
        permutation_set(4, 24)
    with pytest.raises(ConfigError):
        permutation_set(1, 1)


def test_codec_draws_from_fixed_set():
    codec = _codec((3, 3), (96, 96), permutations=30, permutation_seed=5)
    table = {tuple(p) for p in permutation_set(9, 30, 5)}
    assert codec.permutation_table is permutation_set(9, 30, 5)
    rng = np.random.default_rng(0)
    image = _image(codec, rng)
    drawn = set()
    for _ in range(300):
        _, heatmaps, perm = codec.encode(image, rng)
        assert tuple(perm) in table
        drawn.add(tuple(perm))
    assert len(drawn) == 30
    perm = codec.sample_permutation(rng)
    perm[0] = 99  # the caller's copy, not the cached table
    assert tuple(codec.permutation_table[0]) in table


@pytest.mark.parametrize(
    "grid,size", [((4, 3), (192, 256)), ((3, 3), (96, 96)), ((2, 2), (96, 128))]
)
def test_gap_cuts_a_window_of_the_right_patch(grid, size):
    gap = 8
    codec = _codec(grid, size, gap=gap)
    w, h = size
    # every pixel unique and integral; the fill (mean) is a half-integer so it cannot be confused
    image = np.arange(h * w, dtype=np.float64).reshape(h, w)
    assert image.mean() % 1 == 0.5
    pw, ph = codec.patch_size
    rng = np.random.default_rng(2)
    offsets = set()
    for _ in range(3):
        shuffled, heatmaps, perm = codec.encode(image, rng)
        np.testing.assert_array_equal(codec.decode(heatmaps), perm)
        np.testing.assert_array_equal(_peak_cells(codec, heatmaps), perm)
        for src in range(codec.num_patches):
            r0, c0 = divmod(src, grid[1])
            r1, c1 = divmod(int(perm[src]), grid[1])
            cell = shuffled[r1 * ph:(r1 + 1) * ph, c1 * pw:(c1 + 1) * pw]
            content = cell != image.mean()
            ys, xs = np.nonzero(content)
            dy, dx = ys.min(), xs.min()
            assert content.sum() == (ph - gap) * (pw - gap)
            assert 0 <= dy <= gap and 0 <= dx <= gap
            piece = cell[dy:dy + ph - gap, dx:dx + pw - gap]
            sy, sx = divmod(int(piece[0, 0]), w)
            sy, sx = sy - r0 * ph, sx - c0 * pw  # offset inside the source patch
            assert 0 <= sy <= gap and 0 <= sx <= gap
            np.testing.assert_array_equal(
                piece,
                image[r0 * ph + sy:r0 * ph + sy + ph - gap, c0 * pw + sx:c0 * pw + sx + pw - gap],
            )
            offsets.add((dy, dx, sy, sx))
    assert len(offsets) > 1  # offsets really are random


def test_gap_with_constant_patches_uint8():
    codec = _codec((4, 3), (192, 256), gap=8)
    pw, ph = codec.patch_size
    values = 10 * (np.arange(12) + 1)  # mean 65 differs from every patch value
    cells = np.broadcast_to(values[:, None, None, None], (12, ph, pw, 3)).astype(np.uint8)
    image = codec._from_patches(cells.copy(), (256, 192, 3))
    shuffled, heatmaps, perm = codec.encode(image, np.random.default_rng(4))
    assert shuffled.dtype == np.uint8
    got = codec._to_patches(shuffled)
    for src in range(12):
        cell = got[perm[src]]
        assert (cell == values[src]).sum() == 3 * (ph - 8) * (pw - 8)
        assert np.all((cell == values[src]) | (cell == 65))
    np.testing.assert_array_equal(codec.decode(heatmaps), perm)


def test_color_jitter_changes_pixels_not_targets():
    plain = _codec((4, 3), (96, 128))
    jitter = _codec((4, 3), (96, 128), color_jitter=0.2)
    rng = np.random.default_rng(0)
    image = _image(plain, rng, dtype=np.float64)
    s0, h0, p0 = plain.encode(image, np.random.default_rng(11))
    s1, h1, p1 = jitter.encode(image, np.random.default_rng(11))
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(h0, h1)
    np.testing.assert_array_equal(jitter.decode(h1), p1)
    assert not np.allclose(s0, s1)
    # each restored patch/channel is gain * original + offset with gain in [0.8, 1.2]
    restored = jitter._to_patches(jitter.restore(s1, p1))
    original = jitter._to_patches(image)
    gains = set()
    std = image.reshape(-1, 3).std(axis=0)
    for k in range(12):
        for c in range(3):
            x, y = original[k, ..., c].ravel(), restored[k, ..., c].ravel()
            gain, offset = np.polyfit(x, y, 1)
            np.testing.assert_allclose(y, gain * x + offset, atol=1e-5)
            assert 0.8 - 1e-6 <= gain <= 1.2 + 1e-6
            assert abs(offset) <= 0.2 * std[c] + 1e-6
            gains.add(round(gain, 6))
    assert len(gains) > 12  # per patch and per channel


def test_color_jitter_clips_uint8_without_wrapping():
    codec = JigsawCodec(grid=(2, 2), input_size=(32, 32), heatmap_size=(8, 8), color_jitter=0.5)
    image = np.full((32, 32, 3), 250, np.uint8)
    image[0, 0] = 0  # a little spread so offsets are non-zero
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled, _, perm = codec.encode(image, rng)
        assert shuffled.dtype == np.uint8
        restored = codec.restore(shuffled, perm)
        bright = restored[image == 250]
        # >= 250 * 0.5 - 0.5 * std ~ 121, whereas a wrap of 256..375 would give 0..119
        assert np.all(bright >= 120)
        assert np.any(bright == 255)


def test_gap_and_jitter_together_still_decode():
    codec = _codec((4, 3), (192, 256), gap=8, color_jitter=0.2)
    rng = np.random.default_rng(5)
    image = _image(codec, rng)
    for _ in range(3):
        shuffled, heatmaps, perm = codec.encode(image, rng)
        assert shuffled.shape == image.shape and shuffled.dtype == np.uint8
        np.testing.assert_array_equal(codec.decode(heatmaps), perm)


def test_decode_batch_and_conflicting_channels():
    codec = _codec((4, 3), (96, 128))
    rng = np.random.default_rng(3)
    image = _image(codec, rng)
    outs = [codec.encode(image, rng) for _ in range(5)]
    batch = np.stack([o[1] for o in outs])
    perms = np.stack([o[2] for o in outs])
    decoded = codec.decode(batch)
    assert decoded.shape == (5, 12) and decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, perms)

    # channel 1 votes weakly for channel 0's cell too; the assignment still yields a permutation
    heatmaps = outs[0][1].copy()
    perm = outs[0][2]
    heatmaps[1] = 0.5 * heatmaps[0] + 0.4 * heatmaps[1]
    out = codec.decode(heatmaps)
    assert sorted(out.tolist()) == list(range(12))
    np.testing.assert_array_equal(out, perm)
    # a diverged network (NaN maps) still decodes to some permutation
    heatmaps[3] = np.nan
    assert sorted(codec.decode(heatmaps).tolist()) == list(range(12))
    with pytest.raises(ValueError):
        codec.decode(heatmaps[:5])


def test_cell_scores_hand_case():
    maps = np.zeros((4, 4, 4), np.float32)
    maps[0, :2, 2:] = 1.0  # channel 0 fills cell 1
    maps[1, 2:, :2] = 2.0  # channel 1 fills cell 2
    maps[2, 0, 0] = 4.0  # channel 2 has one pixel in cell 0
    scores = cell_scores(maps, (2, 2))
    assert scores.shape == (4, 4)
    np.testing.assert_allclose(scores[0], [0, 1, 0, 0])
    np.testing.assert_allclose(scores[1], [0, 0, 2, 0])
    np.testing.assert_allclose(scores[2], [1, 0, 0, 0])
    assert cell_scores(np.stack([maps, maps]), (2, 2)).shape == (2, 4, 4)
    # 1x4 grid: K=4 but a different cell layout than 2x2
    np.testing.assert_allclose(cell_scores(maps, (1, 4))[2], [1, 0, 0, 0])
    with pytest.raises(ValueError):
        cell_scores(maps, (3, 3))


def test_accuracies_hand_cases():
    true = np.array([[1, 0, 2, 3], [0, 1, 2, 3], [3, 2, 1, 0]])
    pred = np.array([[1, 0, 2, 3], [1, 0, 2, 3], [3, 2, 0, 1]])
    assert placement_accuracy(pred, true) == pytest.approx(8 / 12)
    assert puzzle_accuracy(pred, true) == pytest.approx(1 / 3)
    assert placement_accuracy(true[0], true[0]) == 1.0
    assert puzzle_accuracy(pred[1], true[1]) == 0.0
    assert math.isnan(puzzle_accuracy(np.zeros((0, 4)), np.zeros((0, 4))))
    with pytest.raises(ValueError):
        placement_accuracy(pred, true[:2])


def test_bad_inputs_to_encode_and_restore():
    codec = _codec((2, 2), (96, 96))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="96x96"):
        codec.encode(np.zeros((96, 95, 3), np.uint8), rng)
    image = np.zeros((96, 96), np.uint8)
    with pytest.raises(ValueError, match="permutation"):
        codec.restore(image, np.array([0, 0, 1, 2]))
    with pytest.raises(ValueError, match="permutation"):
        codec.restore(image, np.array([0, 1, 2]))
