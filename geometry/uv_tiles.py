"""Which UV tile each triangle of a UV map belongs to, so texels can be found modulo the tile.

Blender repeats an image outside 0..1, so a mesh whose UVs all sit in one tile (say UDIM 1002,
u + 1) shows the same texture as one in tile 1001. The tile of a triangle is its UV island's:
islands are the triangles connected through shared corners (same UV and same position), and an
island belongs to the tile holding its UV centroid, so an island poking a little past a tile border
stays whole (its texels wrap around; ``geometry.uv_raster``). UVs whose islands lie in several
UDIM tiles (u 0..9, v >= 0) are real UDIM (one image per tile), and an island more than two tiles wide repeats the texture
over itself: both are refused with a ``UVTileError`` naming the tiles. (An island a little wider than a
tile wraps onto itself: those texels are shared, as Blender shows them.)
"""

from __future__ import annotations

import numpy as np

# An island up to this many tiles wide is baked (Blender repeats the image: its part past the border shows
# the same texels as the part they wrap onto, which pool both); a wider one is a texture repeated over the
# surface, refused (its texels would blend places far apart, and its rasterising would grow without bound).
_MAX_EXTENT = 2.0


class UVTileError(ValueError):
    """UVs that one texture cannot hold (several UDIM tiles, or an island repeating the texture over itself)."""


def udim_name(tile: tuple[int, int]) -> str:
    """Blender's UDIM number of a tile (u, v) = (0, 0) -> 1001; tiles outside UDIM's range by coordinates."""
    u, v = tile
    return str(1001 + u + 10 * v) if 0 <= u < 10 and v >= 0 else f"(u {u}, v {v})"


def triangle_tiles(uv: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(T, 2) int64 tile (u, v) of each triangle, the same for a whole island; ``uv`` (T, 3, 2), ``positions``
    (T, 3, 3). Raises ``UVTileError`` for islands in several tiles or an island over two tiles wide."""
    count = len(uv)
    if count == 0:
        return np.zeros((0, 2), dtype=np.int64)
    extent = uv.max(axis=1) - uv.min(axis=1)
    if (extent > _MAX_EXTENT).any():
        raise _repeating(uv, extent.max())
    centroid = uv.mean(axis=1)
    tiles = np.floor(centroid).astype(np.int64)
    if (tiles == tiles[0]).all():
        return tiles
    island = uv_islands(uv, positions)
    # the island's tile: the floor of its UV centroid (triangles weighted by UV area, never all zero)
    area = 0.5 * np.abs(np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0])) + 1e-12
    islands = int(island.max()) + 1
    total = np.bincount(island, weights=area, minlength=islands)
    mean = np.stack([np.bincount(island, weights=area * centroid[:, axis], minlength=islands) for axis in (0, 1)],
                    axis=1) / total[:, None]
    island_tile = np.floor(mean).astype(np.int64)
    low = np.full((islands, 2), np.inf)
    high = np.full((islands, 2), -np.inf)
    np.minimum.at(low, island, uv.min(axis=1))
    np.maximum.at(high, island, uv.max(axis=1))
    if ((high - low) > _MAX_EXTENT).any():
        raise _repeating(uv, (high - low).max())
    used = np.unique(island_tile, axis=0)
    # UDIM tiles are u 0..9, v >= 0: islands also in other tiles (u or v below 0) are a layout that relies on
    # the image repeating (e.g. every face on a whole tile, shifted by whole tiles), baked modulo the tile.
    udim = ((used[:, 0] >= 0) & (used[:, 0] < 10) & (used[:, 1] >= 0)).all()
    if len(used) > 1 and udim:
        names = ", ".join(udim_name(tuple(tile)) for tile in sorted(map(tuple, used), key=lambda t: (t[1], t[0])))
        raise UVTileError(f"UVs span UDIM tiles {names}: Whole Object bakes one image, not one per tile: move the "
                          "UVs into one tile (or texture the objects of each tile separately)")
    return island_tile[island]


def _repeating(uv: np.ndarray, extent: float) -> UVTileError:
    low = np.floor(uv.reshape(-1, 2).min(axis=0)).astype(np.int64)
    high = np.maximum(np.ceil(uv.reshape(-1, 2).max(axis=0)).astype(np.int64) - 1, low)
    tiles = [(u, v) for v in range(low[1], min(high[1], low[1] + 6) + 1) for u in range(low[0], min(high[0], low[0] + 6) + 1)]
    names = ", ".join(udim_name(tile) for tile in tiles[:6]) + (", ..." if len(tiles) > 6 else "")
    return UVTileError(f"UVs span UDIM tiles {names} with an island {extent:.2f} tiles wide (a texture repeated "
                       "over the surface): Whole Object bakes one tile: scale the UVs into one tile")


def uv_islands(uv: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(T,) island label (0..islands-1) of each triangle: connected through corners with the same UV and position."""
    count = len(uv)
    corners = np.concatenate([uv.reshape(-1, 2), positions.reshape(-1, 3)], axis=1).astype(np.float64) + 0.0
    keys = np.ascontiguousarray(corners).view(np.dtype((np.void, corners.itemsize * 5))).ravel()
    _, vertex = np.unique(keys, return_inverse=True)
    vertex = vertex.reshape(count, 3)
    # Union-find over corners, vectorised: hook every edge's larger root onto its smaller, then compress.
    parent = np.arange(int(vertex.max()) + 1)
    a = np.concatenate([vertex[:, 0], vertex[:, 0]])
    b = np.concatenate([vertex[:, 1], vertex[:, 2]])
    while True:
        root_a, root_b = parent[a], parent[b]
        differ = root_a != root_b
        if not differ.any():
            break
        low = np.minimum(root_a[differ], root_b[differ])
        high = np.maximum(root_a[differ], root_b[differ])
        np.minimum.at(parent, high, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, label = np.unique(parent[vertex[:, 0]], return_inverse=True)
    return label.ravel()
