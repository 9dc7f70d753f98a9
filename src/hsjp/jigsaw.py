"""Heatmap-style jigsaw puzzles: the self-supervised pretext task of HSJP.

A person crop of the network's input size is cut into a ``rows x cols`` grid of patches, the
patches are shuffled by a random permutation and the shuffled image is reassembled. The target has
one heatmap channel per *original* patch (K = rows * cols, row-major) at the pose network's heatmap
resolution; channel ``k`` holds a Gaussian centred on the cell where patch ``k`` now lies. Solving
the puzzle therefore needs exactly the head a top-down pose network already has (K heatmaps, peak
regression), so the pretrained network is the pose network itself and its backbone transfers to
keypoint finetuning unchanged (the head is rebuilt for the K keypoints).

``permutation[k]`` is the cell (row-major) where original patch ``k`` lies in the shuffled image.

Encoding and decoding live in one object (:class:`JigsawCodec`) so the convention for where a
Gaussian peaks and how the maps are read back cannot drift apart.

Two options close well-known jigsaw shortcuts (Noroozi & Favaro 2016): ``gap`` removes a random
border from each patch so the network cannot match low-level edge continuity between neighbours,
and ``color_jitter`` perturbs each patch's colour independently so chromatic aberration / colour
fringes cannot reveal a patch's absolute position.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hsjp.errors import ConfigError
from hsjp.heatmaps import gaussian_heatmaps

__all__ = [
    "JigsawCodec",
    "cell_scores",
    "min_hamming_distance",
    "permutation_set",
    "placement_accuracy",
    "puzzle_accuracy",
]

#: Size of the random candidate pool the greedy maximal-Hamming search draws from. A few thousand
#: candidates already give sets whose minimum distance is close to what the full K! pool gives, at a
#: cost that stays well under a second even for K = 16.
_POOL_SIZE = 4096


# -------------------------------------------------------------------------------------------------
# Permutation sets
# -------------------------------------------------------------------------------------------------


def _candidate_pool(num_patches: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct non-identity permutations to choose the set from, in random order.

    When K! is small enough every non-identity permutation is a candidate (the greedy search is then
    as good as it can be); otherwise a random pool of unique permutations is drawn, topped up until
    it is large enough, because duplicates would waste picks and collapse the minimum distance to 0.
    """
    k = num_patches
    target = max(_POOL_SIZE, 2 * size)
    identity = np.arange(k)
    if math.factorial(k) - 1 <= target:
        pool = np.array(list(itertools.permutations(range(k))), dtype=np.int64)
        pool = pool[(pool != identity).any(axis=1)]
    else:
        pool = np.empty((0, k), dtype=np.int64)
        while len(pool) < target:
            need = target - len(pool)
            draws = rng.permuted(np.tile(identity, (need + need // 8 + 16, 1)), axis=1)
            pool = np.unique(np.concatenate([pool, draws]), axis=0)
            pool = pool[(pool != identity).any(axis=1)]
        pool = pool[:target]
    # np.unique / itertools return lexicographic order; shuffle so argmax ties are not biased
    # toward permutations that start 0, 1, 2, ...
    return pool[rng.permutation(len(pool))]


@functools.lru_cache(maxsize=32)
def permutation_set(num_patches: int, size: int, seed: int = 0) -> np.ndarray:
    """``size`` permutations of ``num_patches`` with a large minimum pairwise Hamming distance.

    Greedy farthest-point selection (Noroozi & Favaro 2016): start from a random permutation, then
    repeatedly add the candidate whose minimum Hamming distance to the permutations already chosen
    is largest. Well-separated permutations make the classes of the puzzle distinct, so the network
    cannot solve most of them by placing only a few patches right.

    The result is deterministic in ``(num_patches, size, seed)``, has no duplicates and never
    contains the identity. It is cached (and returned read-only) so that a codec drawing from it on
    every sample does not rebuild it. Returns int64 ``(size, num_patches)``.
    """
    num_patches, size = int(num_patches), int(size)
    if num_patches < 2:
        raise ConfigError(f"permutation set needs at least 2 patches, got {num_patches}")
    available = math.factorial(num_patches) - 1
    if not 1 <= size <= available:
        raise ConfigError(
            f"permutation set size {size} is outside 1..{available} "
            f"(the non-identity permutations of {num_patches} patches)"
        )
    rng = np.random.default_rng(seed)
    pool = _candidate_pool(num_patches, size, rng)
    compact = pool.astype(np.uint8 if num_patches <= 256 else np.int64)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = rng.integers(len(pool))
    min_dist = (compact != compact[chosen[0]]).sum(axis=1)
    min_dist[chosen[0]] = -1
    for i in range(1, size):
        best = int(np.argmax(min_dist))
        chosen[i] = best
        np.minimum(min_dist, (compact != compact[best]).sum(axis=1), out=min_dist)
        min_dist[best] = -1
    result = pool[chosen]
    result.setflags(write=False)
    return result


def _channel_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float64 (C,)) of an (h, w) or (h, w, C) image.

    Sums run down the rows of an (h, w*C) view first and fold the channels afterwards: numpy's
    reductions over a 3-wide trailing axis are ~10x slower, and this runs once per sample.
    """
    channels = image.shape[2] if image.ndim == 3 else 1
    rows = image.reshape(image.shape[0], -1).astype(np.float64)
    n = max(rows.size // channels, 1)
    mean = rows.sum(axis=0).reshape(-1, channels).sum(axis=0) / n
    rows *= rows
    var = rows.sum(axis=0).reshape(-1, channels).sum(axis=0) / n - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def min_hamming_distance(perms: np.ndarray) -> int:
    """Smallest Hamming distance between two distinct rows of ``perms`` (N, K): rates a set."""
    perms = np.asarray(perms)
    dist = (perms[:, None, :] != perms[None, :, :]).sum(axis=-1)
    np.fill_diagonal(dist, perms.shape[1] + 1)
    return int(dist.min())


# -------------------------------------------------------------------------------------------------
# Scoring and metrics
# -------------------------------------------------------------------------------------------------


def cell_scores(heatmaps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean of every channel over every grid cell: ``(..., K, h, w) -> (..., K, K)``.

    Entry ``[..., k, c]`` measures how strongly channel ``k`` (original patch ``k``) votes for cell
    ``c``. Averaging over the whole cell, rather than taking an argmax, uses all the mass the
    network put down and is insensitive to where inside the cell the peak sits. ``grid`` is
    ``(rows, cols)``; it is needed because K alone does not fix the grid's shape (12 = 4x3 = 3x4).
    """
    rows, cols = int(grid[0]), int(grid[1])
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, h, w), got shape {heatmaps.shape}")
    *lead, k, h, w = heatmaps.shape
    if h % rows or w % cols:
        raise ValueError(f"heatmap {w}x{h} (w x h) does not divide into a {rows}x{cols} grid")
    # Sum the rows of each cell band first (a reduction whose inner loop runs along whole rows),
    # then the short column runs: 2-3x faster than one mean over both small axes.
    sums = heatmaps.reshape(*lead, k, rows, h // rows, w).sum(axis=-2, dtype=np.float64)
    sums = sums.reshape(*lead, k, rows, cols, w // cols).sum(axis=-1)
    return sums.reshape(*lead, k, rows * cols) / ((h // rows) * (w // cols))


def placement_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of patches whose decoded cell is right, over ``(K,)`` or ``(N, K)`` permutations.

    This is the partial-credit metric: it keeps improving while whole puzzles are still wrong, so it
    is the one to watch early in pretraining. Returns NaN for empty input.
    """
    pred, true = _check_pair(pred, true)
    return float(np.mean(pred == true)) if pred.size else float("nan")


def puzzle_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of puzzles solved entirely (every patch right), over ``(K,)`` or ``(N, K)``.

    Returns NaN when there are no puzzles.
    """
    pred, true = _check_pair(pred, true)
    if pred.size == 0:
        return float("nan")
    solved = np.all(pred.reshape(-1, pred.shape[-1]) == true.reshape(-1, true.shape[-1]), axis=1)
    return float(solved.mean())


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape or pred.ndim not in (1, 2):
        raise ValueError(
            f"predicted and true permutations must both be (K,) or (N, K) of one shape, "
            f"got {pred.shape} and {true.shape}"
        )
    return pred, true


# -------------------------------------------------------------------------------------------------
# Codec
# -------------------------------------------------------------------------------------------------


def _pair(value: object, name: str) -> tuple[int, int]:
    """Coerce a config value (tuple, list, OmegaConf ListConfig) to a pair of ints, or explain."""
    try:
        a, b = value  # type: ignore[misc]
        pair = (int(a), int(b))
        if pair != (a, b):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"jigsaw {name} must be two integers, got {value!r}") from None
    return pair


@dataclass(frozen=True)
class JigsawCodec:
    """Shuffle a crop into a jigsaw puzzle and write / read its heatmap target.

    ``grid`` is ``(rows, cols)``; ``input_size`` and ``heatmap_size`` are ``(w, h)`` like the rest
    of hsjp. Both sizes must divide evenly by the grid so every patch and every heatmap cell is the
    same whole number of pixels (a patch that straddled pixels would leak its position through
    resampling artefacts).

    ``allow_identity`` applies to uniform sampling (``permutations == 0``); the fixed
    maximal-Hamming set never contains the identity. ``gap`` and ``color_jitter`` are the
    anti-shortcut measures described in the module docstring.
    """

    grid: tuple[int, int]
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    allow_identity: bool = False
    gap: int = 0
    color_jitter: float = 0.0
    permutations: int = 0
    permutation_seed: int = 0

    def __post_init__(self) -> None:
        grid = _pair(self.grid, "grid")
        input_size = _pair(self.input_size, "input_size")
        heatmap_size = _pair(self.heatmap_size, "heatmap_size")
        # Configs arrive as lists; store tuples so the codec stays hashable and comparable.
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "input_size", input_size)
        object.__setattr__(self, "heatmap_size", heatmap_size)
        rows, cols = grid
        if rows < 1 or cols < 1 or rows * cols < 2:
            raise ConfigError(
                f"jigsaw grid {rows}x{cols} must have rows and cols >= 1 and at least 2 patches"
            )
        for label, (w, h) in (("input", input_size), ("heatmap", heatmap_size)):
            if w < 1 or h < 1:
                raise ConfigError(f"jigsaw {label} size {w}x{h} (w x h) must be positive")
            fix = f"pick {'an' if label == 'input' else 'a'} {label} size divisible by the grid"
            if h % rows:
                raise ConfigError(
                    f"jigsaw grid {rows}x{cols} does not divide {label} {w}x{h} (w x h): "
                    f"height {h} is not a multiple of {rows} rows; {fix}"
                )
            if w % cols:
                raise ConfigError(
                    f"jigsaw grid {rows}x{cols} does not divide {label} {w}x{h} (w x h): "
                    f"width {w} is not a multiple of {cols} cols; {fix}"
                )
        (iw, ih), (hw, hh) = input_size, heatmap_size
        if iw * hh != ih * hw:
            raise ConfigError(
                f"jigsaw heatmap {hw}x{hh} is not the same fraction of input {iw}x{ih} (w x h) on "
                f"both axes; use e.g. heatmap {iw // 4}x{ih // 4} for a 1/4-resolution head"
            )
        if not (isinstance(self.sigma, numbers.Real) and self.sigma > 0):
            raise ConfigError(f"jigsaw sigma must be a positive number, got {self.sigma!r}")
        pw, ph = iw // cols, ih // rows
        if not (isinstance(self.gap, numbers.Integral) and 0 <= self.gap < min(pw, ph)):
            raise ConfigError(
                f"jigsaw gap {self.gap!r} must be an integer in 0..{min(pw, ph) - 1} "
                f"(smaller than the {pw}x{ph} patch)"
            )
        if not (isinstance(self.color_jitter, numbers.Real) and 0 <= self.color_jitter < 1):
            raise ConfigError(
                f"jigsaw color_jitter {self.color_jitter!r} must be in [0, 1) "
                "(gains are drawn from [1-j, 1+j] and must stay positive)"
            )
        k = rows * cols
        if not (isinstance(self.permutations, numbers.Integral) and self.permutations >= 0):
            raise ConfigError(
                f"jigsaw permutations {self.permutations!r} must be 0 (uniform) or a positive count"
            )
        if self.permutations > 0:
            available = math.factorial(k) - 1
            if self.permutations > available:
                raise ConfigError(
                    f"jigsaw permutations={self.permutations} exceeds the {available} non-identity "
                    f"permutations of a {rows}x{cols} grid; pick at most {available} "
                    "or 0 for uniform"
                )

    # ---- geometry --------------------------------------------------------------------------------

    @property
    def num_patches(self) -> int:
        """K = rows * cols: the number of heatmap channels the network must output."""
        return self.grid[0] * self.grid[1]

    @property
    def patch_size(self) -> tuple[int, int]:
        """(w, h) of one patch in input pixels."""
        return self.input_size[0] // self.grid[1], self.input_size[1] // self.grid[0]

    @property
    def cell_size(self) -> tuple[int, int]:
        """(w, h) of one grid cell in heatmap pixels."""
        return self.heatmap_size[0] // self.grid[1], self.heatmap_size[1] // self.grid[0]

    @functools.cached_property
    def cell_centers(self) -> np.ndarray:
        """(K, 2) xy centre of every cell in heatmap pixels, pixel-centre convention.

        Pixel ``i`` covers ``[i - 0.5, i + 0.5]``, so the cell spanning pixels ``[a, a + n)`` has
        its centre at ``a + n / 2 - 0.5``; this matches how :mod:`hsjp.heatmaps` places keypoints.
        """
        rows, cols = self.grid
        cw, ch = self.cell_size
        cell = np.arange(self.num_patches)
        x = (cell % cols + 0.5) * cw - 0.5
        y = (cell // cols + 0.5) * ch - 0.5
        centers = np.stack([x, y], axis=1).astype(np.float32)
        centers.setflags(write=False)
        return centers

    @functools.cached_property
    def _cell_maps(self) -> np.ndarray:
        """One Gaussian per destination cell, rendered once: a target is just these, reindexed."""
        maps = gaussian_heatmaps(self.cell_centers, self.heatmap_size, self.sigma)
        maps.setflags(write=False)
        return maps

    @property
    def permutation_table(self) -> np.ndarray | None:
        """The fixed permutation set (read-only, cached), or None when sampling uniformly."""
        if self.permutations == 0:
            return None
        return permutation_set(self.num_patches, self.permutations, self.permutation_seed)

    # ---- encoding --------------------------------------------------------------------------------

    def sample_permutation(self, rng: np.random.Generator) -> np.ndarray:
        """Draw one permutation (int64 (K,)) as configured.

        Uniform sampling rejects the identity when it is not allowed: an unshuffled puzzle teaches
        "everything stays put", a trivial answer that the network could otherwise learn as a prior.
        Rejection keeps the remaining permutations exactly uniform and needs < 2 draws on average.
        """
        table = self.permutation_table
        if table is not None:
            return table[rng.integers(len(table))].copy()
        k = self.num_patches
        while True:
            perm = rng.permutation(k)
            if self.allow_identity or np.any(perm != np.arange(k)):
                return perm.astype(np.int64, copy=False)

    def permutation_index(self, permutation: np.ndarray) -> int:
        """The class of ``permutation`` in the fixed set: the label of the classification jigsaw."""
        table = self.permutation_table
        if table is None:
            raise ConfigError("the classification jigsaw needs a fixed permutation set (jigsaw.permutations > 0)")
        hits = np.flatnonzero((table == self._check_permutation(permutation)).all(axis=1))
        if len(hits) != 1:
            raise ValueError(f"permutation {permutation!r} is not in the codec's set")
        return int(hits[0])

    def heatmaps_for(self, permutation: np.ndarray) -> np.ndarray:
        """Target heatmaps float32 (K, h, w) for ``permutation``: channel k peaks in perm[k]."""
        perm = self._check_permutation(permutation)
        return self._cell_maps[perm]

    def encode(
        self, image: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shuffle ``image`` ((h, w) or (h, w, C), any numeric dtype) into a puzzle.

        Returns ``(shuffled, heatmaps, permutation)``: the shuffled image with the input's dtype and
        shape, float32 target heatmaps (K, h, w) at ``heatmap_size`` and the int64 permutation (K,).
        Randomness comes only from ``rng`` (permutation first, then jitter, then gap offsets), so a
        seeded generator reproduces a sample exactly.
        """
        image = np.asarray(image)
        w, h = self.input_size
        if image.ndim not in (2, 3) or image.shape[:2] != (h, w):
            raise ValueError(
                f"jigsaw input must be {h}x{w} (h x w) or {h}x{w}xC to match input_size {w}x{h} "
                f"(w x h), got shape {image.shape}"
            )
        perm = self.sample_permutation(rng)
        patches = self._to_patches(image)
        if self.gap == 0 and self.color_jitter == 0:
            cells = np.empty_like(patches)
            cells[perm] = patches
        else:
            cells = self._cut_and_paste(image, patches, perm, rng)
        return self._from_patches(cells, image.shape), self._cell_maps[perm], perm

    def _cut_and_paste(
        self, image: np.ndarray, patches: np.ndarray, perm: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The gap / jitter path: cells (K, ph, pw, C) indexed by destination cell.

        Jitter is applied to all K patches in one vectorised pass; the cut-and-paste then loops
        over the K patches with plain slices, which copy whole rows and are far cheaper than
        gathering every pixel through fancy-index arrays (each patch's window differs).
        """
        k, ph, pw, channels = patches.shape
        g = self.gap
        mean, std = _channel_stats(image)
        if self.color_jitter > 0:
            j = float(self.color_jitter)
            gain = rng.uniform(1 - j, 1 + j, size=(k, 1, channels))
            offset = rng.uniform(-j, j, size=(k, 1, channels)) * std
            work_dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32
            if np.dtype(work_dtype).itemsize < 4:
                work_dtype = np.float32
            # (K, ph, pw*C) with gains tiled along the row: a long inner loop for numpy instead of
            # broadcasting a length-C vector, which is ~20x slower for C=3.
            work = patches.reshape(k, ph, pw * channels).astype(work_dtype)
            work *= np.tile(gain, (1, 1, pw)).astype(work_dtype)
            work += np.tile(offset, (1, 1, pw)).astype(work_dtype)
            patches = self._to_dtype(work, image.dtype).reshape(k, ph, pw, channels)
        if g == 0:
            cells = np.empty_like(patches)
            cells[perm] = patches
            return cells
        sy, sx, dy, dx = rng.integers(0, g + 1, size=(4, k))
        # The border left by the gap is filled with the crop's mean colour: constant across cells,
        # so it carries no information about where a cell came from.
        cells = np.empty_like(patches)
        # tiled along the row for the same inner-loop reason as the jitter above
        cells.reshape(k, ph, pw * channels)[...] = np.tile(self._to_dtype(mean, image.dtype), pw)
        ih, iw = ph - g, pw - g
        for src in range(k):
            cells[perm[src], dy[src]:dy[src] + ih, dx[src]:dx[src] + iw] = patches[
                src, sy[src]:sy[src] + ih, sx[src]:sx[src] + iw
            ]
        return cells

    @staticmethod
    def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Cast float values back to the image dtype, rounding and clipping for integer images."""
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(values), info.min, info.max).astype(dtype)
        return np.asarray(values).astype(dtype)

    # ---- decoding --------------------------------------------------------------------------------

    def cell_scores(self, heatmaps: np.ndarray) -> np.ndarray:
        """(..., K, h, w) -> (..., K, K) scores on this codec's grid; see :func:`cell_scores`."""
        return cell_scores(heatmaps, self.grid)

    def decode(self, heatmaps: np.ndarray) -> np.ndarray:
        """Permutation int64 (K,) from heatmaps (K, h, w), or (N, K) from a batch (N, K, h, w).

        Each channel is matched to a cell by the Hungarian algorithm on the cell scores (maximising
        total score) rather than by per-channel argmax, so the answer is always a true permutation
        even when two channels claim the same cell. The maps may be any resolution the grid divides.
        """
        heatmaps = np.asarray(heatmaps)
        k = self.num_patches
        if heatmaps.ndim not in (3, 4) or heatmaps.shape[-3] != k:
            raise ValueError(
                f"jigsaw decode expects ({k}, h, w) or (N, {k}, h, w) heatmaps, "
                f"got {heatmaps.shape}"
            )
        scores = self.cell_scores(heatmaps)
        # NaN / inf from a diverging network would make the assignment solver refuse the matrix.
        scores = np.nan_to_num(scores, nan=-1e9, posinf=1e9, neginf=-1e9)
        batch = scores.reshape(-1, k, k)
        out = np.empty((len(batch), k), dtype=np.int64)
        for i, s in enumerate(batch):
            rows, cols = linear_sum_assignment(s, maximize=True)
            out[i, rows] = cols
        return out.reshape(scores.shape[:-1])

    def restore(self, shuffled: np.ndarray, permutation: np.ndarray) -> np.ndarray:
        """Undo the shuffle: put the cell at ``permutation[k]`` back at cell ``k``.

        Exact inverse of :meth:`encode` when ``gap == 0`` and there is no jitter; otherwise the
        cells return to their places with their gap border and jitter left as they are. Useful to
        visualise a decoded prediction.
        """
        shuffled = np.asarray(shuffled)
        w, h = self.input_size
        if shuffled.ndim not in (2, 3) or shuffled.shape[:2] != (h, w):
            raise ValueError(
                f"jigsaw restore expects a {h}x{w} (h x w) image, got shape {shuffled.shape}"
            )
        perm = self._check_permutation(permutation)
        return self._from_patches(self._to_patches(shuffled)[perm], shuffled.shape)

    # ---- helpers ---------------------------------------------------------------------------------

    def _check_permutation(self, permutation: np.ndarray) -> np.ndarray:
        perm = np.asarray(permutation)
        k = self.num_patches
        if (
            perm.shape != (k,)
            or not np.issubdtype(perm.dtype, np.integer)
            or not np.array_equal(np.sort(perm), np.arange(k))
        ):
            raise ValueError(f"expected a permutation of 0..{k - 1}, got {permutation!r}")
        return perm.astype(np.int64, copy=False)

    def _to_patches(self, image: np.ndarray) -> np.ndarray:
        """(h, w[, C]) -> (K, ph, pw, C) in row-major cell order (a copy)."""
        rows, cols = self.grid
        pw, ph = self.patch_size
        channels = image.shape[2] if image.ndim == 3 else 1
        blocks = image.reshape(rows, ph, cols, pw, channels).transpose(0, 2, 1, 3, 4)
        return blocks.reshape(rows * cols, ph, pw, channels)

    def _from_patches(self, cells: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """(K, ph, pw, C) -> image of ``shape``, the inverse of :meth:`_to_patches`."""
        rows, cols = self.grid
        _, ph, pw, channels = cells.shape
        image = cells.reshape(rows, cols, ph, pw, channels).transpose(0, 2, 1, 3, 4)
        return image.reshape(shape)
