"""Fill what no view saw, and pad the gutter around the UV islands.

``fill_unseen``: a texel no view saw takes the colour of the nearest seen surface in 3D
(a voxel pyramid of the seen texels' colours, read trilinearly at the finest level that
has seen texels around it), so
the two sides of a UV seam, which are the same surface points, get the same colour.
``pad_gutter``: the texels outside every island take the colour of the nearest islands
(a pull-push pyramid over the texture: each empty texel reads the finest level whose
2^k block around it holds covered texels), like Blender's bake margin but everywhere,
so mipmaps and texture filtering never pull in black.
"""

from __future__ import annotations

import numpy as np

# Cells of the finest voxel grid across the surface's largest bounding-box side (a dense grid:
# 128^3 cells hold 4 float32 each, 32 MB).
_FINEST_CELLS_ACROSS = 128
# Smoothing passes over the filled texels (each reads the voxel grid of all texels once).
_SMOOTHING_PASSES = 2
# Rings of texels around each UV island that copy its edge (the rest of the gutter is pull-push).
_EXTEND_RINGS = 2


def fill_unseen(position: np.ndarray, colour: np.ndarray, seen: np.ndarray, spacing: float = 0.0) -> np.ndarray:
    """``colour`` (M, C) with every row where ``seen`` is False replaced from the nearest seen texels in 3D.

    The seen texels are averaged into a voxel pyramid; an unseen texel reads, trilinearly
    (normalised by which voxels hold seen texels, so empty voxels do not darken it), the
    finest level that has seen texels around it. Then the unseen texels are smoothed over
    the voxel grid a few times, seen texels held fixed, so texels on either side of a UV
    seam (a texel ``spacing`` or so apart in 3D) read one continuous field.
    ``spacing``: the world distance between neighbouring texels (``SurfaceTexels.spacing``);
    the voxels are at least twice as large.
    """
    position = np.asarray(position, dtype=np.float32)
    seen = np.asarray(seen, dtype=bool)
    if position.shape != (len(colour), 3) or seen.shape != (len(colour),):
        raise ValueError(f"position must be (M, 3) and seen (M,) for colour of {len(colour)} rows, "
                         f"got {position.shape} and {seen.shape}")
    filled = np.array(colour, dtype=np.float32, copy=True)
    missing = np.flatnonzero(~seen)
    if len(missing) == 0:
        return filled
    if not seen.any():
        raise ValueError("seen marks no texel: there is no colour to fill from")
    low = position.min(axis=0)
    extent = position.max(axis=0) - low
    voxel = max(float(extent.max()) / _FINEST_CELLS_ACROSS, 2.0 * float(spacing), 1e-9)
    shape = tuple(int(n) for n in np.floor(extent / voxel).astype(np.int64) + 2)
    # Voxel centres sit at integer grid coordinates, so trilinear lookups are floor + fraction.
    grid = (position - low) / np.float32(voxel)
    cells = np.rint(grid).astype(np.int64)
    linear = np.ravel_multi_index((cells[:, 0], cells[:, 1], cells[:, 2]), shape)
    sums, counts = _splat(linear[seen], filled[seen], shape)
    grid_missing = grid[missing]
    pending = np.arange(len(missing))
    scale = 1.0
    while len(pending):
        # Coarse cell j covers fine cells [j * scale, (j + 1) * scale): its centre is at fine coordinate (j + 0.5) * scale - 0.5.
        value, weight = _trilinear(sums, counts, (grid_missing[pending] + 0.5) / np.float32(scale) - 0.5)
        found = weight > 1e-6
        filled[missing[pending[found]]] = value[found] / weight[found, None]
        pending = pending[~found]
        if max(counts.shape) == 1:
            break
        sums, counts = _halve3(sums), _halve3(counts[..., None])[..., 0]
        scale *= 2.0
    # Only texels in the voxels around unseen ones take part in the smoothing.
    near = np.zeros(shape, dtype=bool)
    near.ravel()[linear[missing]] = True
    for axis in range(3):
        grown = near.copy()
        low_side = [slice(None)] * 3
        high_side = [slice(None)] * 3
        low_side[axis], high_side[axis] = slice(None, -1), slice(1, None)
        grown[tuple(low_side)] |= near[tuple(high_side)]
        grown[tuple(high_side)] |= near[tuple(low_side)]
        near = grown
    involved = np.flatnonzero(near.ravel()[linear])
    for _ in range(_SMOOTHING_PASSES):
        sums, counts = _splat(linear[involved], filled[involved], shape)
        value, weight = _trilinear(sums, counts, grid_missing)
        filled[missing] = value / weight[:, None]  # > 0: each texel's own voxel holds it
    return filled


def _splat(linear: np.ndarray, colour: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel of a dense grid: the sum of the colours of the texels in it, and their count."""
    size = int(np.prod(shape))
    counts = np.bincount(linear, minlength=size).astype(np.float32).reshape(shape)
    sums = np.stack([np.bincount(linear, weights=colour[:, c], minlength=size).astype(np.float32)
                     for c in range(colour.shape[1])], axis=-1).reshape(shape + (colour.shape[1],))
    return sums, counts


def _trilinear(sums: np.ndarray, counts: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear interpolation of a grid's colour sums and counts at continuous grid coordinates."""
    shape = np.array(counts.shape)
    base = np.clip(np.floor(point).astype(np.int64), 0, np.maximum(shape - 2, 0))
    fraction = np.clip(point - base, 0.0, 1.0)
    value = np.zeros((len(point), sums.shape[-1]), dtype=np.float32)
    weight = np.zeros(len(point), dtype=np.float32)
    for corner in range(8):
        offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        index = np.minimum(base + offset, shape - 1)
        share = np.prod(np.where(offset == 1, fraction, 1.0 - fraction), axis=1).astype(np.float32)
        count = counts[index[:, 0], index[:, 1], index[:, 2]]
        # Weigh voxels by presence, not by how many texels they hold: a texel-dense island must not pull harder.
        present = np.minimum(count, 1.0) * share
        value += (present / np.maximum(count, 1.0))[:, None] * sums[index[:, 0], index[:, 1], index[:, 2]]
        weight += present
    return value, weight


def _halve3(grid: np.ndarray) -> np.ndarray:
    """Sum over 2x2x2 blocks of a (X, Y, Z, C) grid (odd sizes padded with zeros)."""
    padded = np.pad(grid, [(0, n % 2) for n in grid.shape[:3]] + [(0, 0)])
    return sum(padded[i::2, j::2, k::2] for i in (0, 1) for j in (0, 1) for k in (0, 1))


def pad_gutter(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """``texture`` (S, S, C) with every texel where ``covered`` is False filled from the nearest covered ones."""
    texture = np.asarray(texture, dtype=np.float32)
    covered = np.asarray(covered, dtype=bool)
    if covered.shape != texture.shape[:2]:
        raise ValueError(f"covered must have shape {texture.shape[:2]} like texture, got {covered.shape}")
    if not covered.any():
        raise ValueError("covered marks no texel: there is no colour to pad from")
    # The first rings around each island continue its edge texels exactly (Blender's "extend" margin) ...
    texture = texture.copy()
    covered = covered.copy()
    for _ in range(_EXTEND_RINGS):
        _extend_one_ring(texture, covered)
    # ... the rest is pulled from the nearest islands.
    sums = [texture * covered[..., None]]
    weights = [covered.astype(np.float32)]
    while max(weights[-1].shape) > 1:
        sums.append(_halve(sums[-1]))
        weights.append(_halve(weights[-1][..., None])[..., 0])
    # Push: from the coarsest level down, every empty cell takes its parent's average; the full-size
    # level only touches the empty texels.
    colour = sums[-1] / np.maximum(weights[-1], 1e-12)[..., None]
    for level in range(len(sums) - 2, 0, -1):
        height, width = weights[level].shape
        parent = np.repeat(np.repeat(colour, 2, axis=0), 2, axis=1)[:height, :width]
        own = sums[level] / np.maximum(weights[level], 1e-12)[..., None]
        colour = np.where((weights[level] > 0)[..., None], own, parent)
    rows, columns = np.nonzero(~covered)
    texture[rows, columns] = colour[rows // 2, columns // 2]
    return texture


def _extend_one_ring(texture: np.ndarray, covered: np.ndarray) -> None:
    """Give every empty texel next to a covered one (4-neighbours) the mean of those neighbours, in place."""
    height, width = covered.shape
    rows, columns = np.nonzero(~covered & _has_covered_neighbour(covered))
    total = np.zeros((len(rows), texture.shape[2]), dtype=np.float32)
    count = np.zeros(len(rows), dtype=np.float32)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = rows + dr, columns + dc
        valid = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        valid[valid] = covered[r[valid], c[valid]]
        total[valid] += texture[r[valid], c[valid]]
        count[valid] += 1.0
    texture[rows, columns] = total / count[:, None]
    covered[rows, columns] = True


def _has_covered_neighbour(covered: np.ndarray) -> np.ndarray:
    near = np.zeros_like(covered)
    near[1:] |= covered[:-1]
    near[:-1] |= covered[1:]
    near[:, 1:] |= covered[:, :-1]
    near[:, :-1] |= covered[:, 1:]
    return near


def _halve(array: np.ndarray) -> np.ndarray:
    """Sum over 2x2 blocks (odd sizes padded with zeros)."""
    height, width = array.shape[:2]
    padded = np.pad(array, ((0, height % 2), (0, width % 2), (0, 0)))
    return padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]


def _cell_keys(cells: np.ndarray) -> np.ndarray:
    """One int64 per voxel (21 bits per axis: cells are at most 512 * 2 across)."""
    return (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
