"""View-by-view texturing (``object_method = SEQUENTIAL``): what a view already shows of the texture
baked so far, and where it should repaint.

For view k: ``render_texture`` draws the texture baked from views 1..k-1 into view k's frame
(the image to inpaint), and ``repaint_mask`` marks the pixels whose surface no earlier view
saw, or saw much more obliquely than view k does, feathered so the repaint blends in. The
pixels come from the numpy z-buffer of the textured object's own triangles
(``geometry.raster.rasterize``), checked against the whole scene's depth so occluded
surface is left alone.
"""

from __future__ import annotations

import numpy as np

from .camera import ViewCamera
from .raster import SurfaceHits

# Repaint where the best earlier view saw the surface at less than this share of this view's cos.
BETTER_RATIO = 0.7


def pixel_uv(hits: SurfaceHits, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((h, w, 2) UV of the surface each pixel shows, (h, w) bool covered); ``uv`` (T, 3, 2) per triangle corner
    of the triangles ``hits`` was rasterised from."""
    covered = hits.covered
    result = np.zeros(covered.shape + (2,), dtype=np.float32)
    triangle = hits.triangle[covered]
    result[covered] = np.einsum("nc,ncu->nu", hits.barycentric[covered], uv[triangle]).astype(np.float32)
    return result, covered


def visible_in_scene(hits: SurfaceHits, scene_depth: np.ndarray, relative_tolerance: float = 1e-3) -> np.ndarray:
    """(h, w) bool: the object's surface at the pixel is what the view sees (nothing of the scene in front)."""
    return hits.covered & (hits.depth <= scene_depth * (1.0 + relative_tolerance) + 1e-6)


def render_texture(hits: SurfaceHits, uv: np.ndarray, texture: np.ndarray,
                   scene_depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((h, w, C) the texture drawn through the view (bilinear, wrapping like Blender's Repeat extension),
    (h, w) bool where the object is visible); 0 elsewhere. ``texture`` (S, S, C) top row first."""
    coordinates, covered = pixel_uv(hits, uv)
    if scene_depth is not None:
        covered = covered & visible_in_scene(hits, scene_depth)
    size = texture.shape[0]
    image = np.zeros(covered.shape + (texture.shape[2],), dtype=np.float32)
    u, v = coordinates[covered, 0], coordinates[covered, 1]
    x = u * size - 0.5
    y = (1.0 - v) * size - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    tx, ty = (x - x0)[:, None], (y - y0)[:, None]
    flat = texture.reshape(-1, texture.shape[2])

    def at(row, column):
        return flat[(row % size) * size + (column % size)]

    top = at(y0, x0) * (1 - tx) + at(y0, x0 + 1) * tx
    bottom = at(y0 + 1, x0) * (1 - tx) + at(y0 + 1, x0 + 1) * tx
    image[covered] = top * (1 - ty) + bottom * ty
    return image, covered


def repaint_mask(camera: ViewCamera, hits: SurfaceHits, uv: np.ndarray, corner_normals: np.ndarray,
                 best_cosine: np.ndarray, scene_depth: np.ndarray | None = None, *, cutoff_cosine: float = 0.17,
                 better_ratio: float = BETTER_RATIO, feather_pixels: int = 4) -> np.ndarray:
    """(h, w) float32 in 0..1, 1 = repaint: pixels of the object whose surface the earlier views saw at best
    with cos ``best_cosine`` ((S, S) top row first, 0 = never seen, e.g. ``GatheredTexels.best_cosine``
    scattered into the texture) below ``better_ratio`` x this view's cos; feathered by ``feather_pixels``."""
    coordinates, covered = pixel_uv(hits, uv)
    if scene_depth is not None:
        covered = covered & visible_in_scene(hits, scene_depth)
    size = best_cosine.shape[0]
    triangle = hits.triangle[covered]
    normal = np.einsum("nc,ncd->nd", hits.barycentric[covered], corner_normals[triangle])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    _, direction = camera.pixel_rays()
    here = np.abs(np.einsum("nd,nd->n", normal, direction[covered]))  # both sides of a face render
    # the texel under the pixel, wrapping like the texture (UVs in any tile)
    column = np.floor(coordinates[covered, 0] * size).astype(np.int64) % size
    row = np.floor((1.0 - coordinates[covered, 1]) * size).astype(np.int64) % size
    before = best_cosine[row, column]
    mask = np.zeros(covered.shape, dtype=np.float32)
    mask[covered] = ((here > cutoff_cosine) & (before < better_ratio * here)).astype(np.float32)
    return _feather(mask, feather_pixels)


def _feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """A box blur of ``radius`` pixels, twice (close to a Gaussian), that never lowers fully repainted pixels."""
    if radius <= 0:
        return mask
    blurred = mask
    for _ in range(2):
        for axis in (0, 1):
            padded = np.pad(blurred, [(radius + 1, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
            summed = np.cumsum(padded, axis=axis, dtype=np.float64)
            upper = np.take(summed, np.arange(2 * radius + 1, summed.shape[axis]), axis=axis)
            lower = np.take(summed, np.arange(0, summed.shape[axis] - 2 * radius - 1), axis=axis)
            blurred = ((upper - lower) / (2 * radius + 1)).astype(np.float32)
    return np.maximum(blurred, mask)
