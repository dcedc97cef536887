"""Gather what several views saw of a surface into its texels (the heart of baking views into a UV map).

For every texel (``geometry.uv_raster.SurfaceTexels``) and every view: project its world
position into the view; it is visible when inside the frame and its view depth matches
the view's depth image (so any object in front occludes it); its weight is how
frontally the view sees it (cos of the angle between the surface normal and the view
ray, to a power, zero past a cut-off angle), faded near the frame edge and near depth
discontinuities (silhouettes, where a bilinear sample would take in the background);
the colour is the bilinear sample of the view's image; the texel's colour is the
weighted average over the views. All numpy, vectorised over texels.

View images and depth images are (height, width, ...) with the top row first, in the
pixel frame of ``geometry.camera.ViewCamera.project``; depth is the view depth along the
camera axis, ``inf`` where the view sees only background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import ViewCamera
from .fill import fill_unseen, pad_gutter
from .uv_raster import SurfaceTexels


# Texels per chunk of the gather: its temporaries stay in the CPU's cache.
_CHUNK_TEXELS = 1 << 16


@dataclass(frozen=True)
class BakeSettings:
    """How views are weighed against each other (defaults suit 512^2 views of a 2048^2 texture)."""

    cosine_power: float = 2.0  # weight = cos(angle)^power: frontal views dominate oblique ones
    cutoff_degrees: float = 80.0  # views seeing the surface more obliquely than this contribute nothing
    cutoff_ramp: float = 0.05  # cos range over which the weight fades in above the cut-off (no hard seam)
    frame_fade_pixels: float = 8.0  # weight rises from 0 to 1 over this many pixels from the frame edge
    silhouette_fade_pixels: float = 4.0  # ...and over this many pixels from a depth discontinuity
    silhouette_jump_pixels: float = 8.0  # a depth step larger than this many pixel footprints is a discontinuity
    depth_tolerance_pixels: float = 1.5  # depth test slack in pixel footprints (grows with obliqueness)

    def __post_init__(self) -> None:
        if not 0.0 < self.cutoff_degrees < 90.0:
            raise ValueError(f"cutoff_degrees must be in (0, 90), got {self.cutoff_degrees}")
        for name in ("cosine_power", "cutoff_ramp", "frame_fade_pixels", "silhouette_fade_pixels",
                     "silhouette_jump_pixels", "depth_tolerance_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass
class BakeView:
    """One view: its camera, what it shows (h, w, channels) and its depth (h, w), top row first."""

    camera: ViewCamera
    image: np.ndarray
    depth: np.ndarray

    def __post_init__(self) -> None:
        shape = (self.camera.height, self.camera.width)
        if self.image.ndim != 3 or self.image.shape[:2] != shape:
            raise ValueError(f"image must have shape {shape + ('channels',)} like its camera, got {self.image.shape}")
        if self.depth.shape != shape:
            raise ValueError(f"depth must have shape {shape} like its camera, got {self.depth.shape}")


@dataclass
class GatheredTexels:
    """Per covered texel: the weighted average colour (zero where unseen), the weight sum,
    and the most frontal view that saw it (index, cos; -1 and 0 where none did)."""

    colour: np.ndarray
    weight: np.ndarray
    best_view: np.ndarray
    best_cosine: np.ndarray

    @property
    def seen(self) -> np.ndarray:
        return self.weight > 0.0


def gather_views(texels: SurfaceTexels, views: list[BakeView], settings: BakeSettings = BakeSettings()) -> GatheredTexels:
    """The weighted average of every view's colour at every texel (see the module docstring)."""
    if not views:
        raise ValueError("views must hold at least one view")
    channels = views[0].image.shape[2]
    if any(view.image.shape[2] != channels for view in views):
        raise ValueError("views must all have images with the same number of channels")
    count = len(texels.index)
    colour = np.zeros((count, channels), dtype=np.float32)
    weight = np.zeros(count, dtype=np.float32)
    best_view = np.full(count, -1, dtype=np.int16)
    best_cosine = np.zeros(count, dtype=np.float32)
    prepared = [_PreparedView(view, settings) for view in views]
    # Texels in cache-sized chunks: every step below is a pass over arrays of the chunk's length.
    for start in range(0, count, _CHUNK_TEXELS):
        chunk = slice(start, min(start + _CHUNK_TEXELS, count))
        surface = _ChunkSurface(texels.position[chunk], texels.normal[chunk])
        for view_index, view in enumerate(prepared):
            hits, view_weight, cosine, samples = view.gather(surface)
            target = hits + start
            colour[target] += view_weight[:, None] * samples
            weight[target] += view_weight
            better = cosine > best_cosine[target]
            best_cosine[target[better]] = cosine[better]
            best_view[target[better]] = view_index
    seen = weight > 0
    colour[seen] /= weight[seen, None]
    return GatheredTexels(colour=colour, weight=weight, best_view=best_view, best_cosine=best_cosine)


class _ChunkSurface:
    """A chunk of texels' positions and normals, with the view-independent products every view needs."""

    def __init__(self, position: np.ndarray, normal: np.ndarray) -> None:
        self.position = position
        self.normal = normal
        self.normal_dot_position = np.einsum("ij,ij->i", normal, position)
        self.position_squared = np.einsum("ij,ij->i", position, position)


class _PreparedView:
    """A view with what every chunk of texels needs from it computed once."""

    def __init__(self, view: BakeView, settings: BakeSettings) -> None:
        camera = view.camera
        self.width, self.height = camera.width, camera.height
        self.ortho = camera.ortho
        self.forward = camera.forward.astype(np.float32)
        self.location = camera.location.astype(np.float32)
        world_to_clip = (camera.projection @ camera.view_matrix).astype(np.float32)
        self.clip_xyw = world_to_clip[[0, 1, 3], :3].T.copy()
        self.clip_offset = world_to_clip[[0, 1, 3], 3].copy()
        view_row = camera.view_matrix[2]
        self.depth_axis = (-view_row[:3]).astype(np.float32)
        self.depth_offset = np.float32(-view_row[3])
        self.footprint = np.float32(2.0 / (abs(camera.projection[0, 0]) * camera.width))
        self.depth = np.ascontiguousarray(view.depth, dtype=np.float32).ravel()
        self.confidence = _confidence(view, settings).ravel()
        self.image = np.ascontiguousarray(view.image, dtype=np.float32).reshape(-1, view.image.shape[2])
        self.cutoff = np.float32(np.cos(np.radians(settings.cutoff_degrees)))
        self.ramp = np.float32(1.0 / max(settings.cutoff_ramp, 1e-6))
        self.power = settings.cosine_power
        self.tolerance = np.float32(settings.depth_tolerance_pixels)

    def gather(self, surface: "_ChunkSurface"):
        """(texel indices seen, their weights, their cos, their bilinear colour samples) for a chunk."""
        if self.ortho:
            cosine = surface.normal @ -self.forward
        else:
            # n.(c - p) / |c - p| with n.p and |p|^2 computed once for all views
            cosine = surface.normal @ self.location - surface.normal_dot_position
            distance_squared = surface.position_squared - 2.0 * (surface.position @ self.location) \
                + np.float32(self.location @ self.location)
            cosine /= np.sqrt(np.maximum(distance_squared, np.float32(1e-20)))
        hits = np.flatnonzero(cosine > self.cutoff)
        cosine = cosine[hits]
        points = surface.position[hits]
        clip = points @ self.clip_xyw + self.clip_offset
        inverse_w = np.float32(1.0) / clip[:, 2]
        x = (clip[:, 0] * inverse_w + 1.0) * np.float32(0.5 * self.width)
        y = (1.0 - clip[:, 1] * inverse_w) * np.float32(0.5 * self.height)
        depth = points @ self.depth_axis + self.depth_offset
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height) & (depth > 0)
        pixel = np.clip(y, 0, self.height - 1).astype(np.int32) * self.width + np.clip(x, 0, self.width - 1).astype(np.int32)
        # Depth test slack: the texel and the pixel centre are up to ~1 pixel apart across a surface
        # tilted by the angle whose tangent this is.
        tangent = np.sqrt(np.maximum(1.0 - cosine * cosine, 0.0)) / cosine
        slack = (depth if not self.ortho else np.float32(1.0)) * self.footprint * self.tolerance * (1.0 + tangent)
        visible = inside & (np.abs(depth - self.depth[pixel]) <= slack)
        view_weight = _power(cosine, self.power) * np.minimum((cosine - self.cutoff) * self.ramp, 1.0) \
            * self.confidence[pixel]
        keep = np.flatnonzero(visible & (view_weight > 0))
        return hits[keep], view_weight[keep], cosine[keep], _bilinear(self.image, self.width, self.height,
                                                                       x[keep], y[keep])


def _power(base: np.ndarray, exponent: float) -> np.ndarray:
    """``base ** exponent``, by multiplication for small whole exponents (np.power is slow)."""
    if exponent == int(exponent) and 0 <= exponent <= 4:
        result = np.ones_like(base)
        for _ in range(int(exponent)):
            result *= base
        return result
    return base ** np.float32(exponent)


def view_confidence(view: BakeView, settings: BakeSettings = BakeSettings()) -> np.ndarray:
    """(h, w) float32 in 0..1: how far each pixel is from the frame edge and from a silhouette."""
    return _confidence(view, settings)


def _pixel_footprint(camera: ViewCamera, depth: np.ndarray) -> np.ndarray:
    """The width of one pixel, in world units, at a view depth (constant for orthographic cameras)."""
    per_unit_depth = np.float32(2.0 / (abs(camera.projection[0, 0]) * camera.width))
    return per_unit_depth if camera.ortho else depth * per_unit_depth


def _confidence(view: BakeView, settings: BakeSettings) -> np.ndarray:
    height, width = view.depth.shape
    rows = np.arange(height, dtype=np.float32) + 0.5
    columns = np.arange(width, dtype=np.float32) + 0.5
    to_edge = np.minimum.outer(np.minimum(rows, height - rows), np.minimum(columns, width - columns))
    frame = np.clip((to_edge - 0.5) / max(settings.frame_fade_pixels, 1e-6), 0.0, 1.0)
    distance = _distance_to_discontinuity(view.depth, view.camera, settings)
    silhouette = np.clip((distance - 1.0) / max(settings.silhouette_fade_pixels, 1e-6), 0.0, 1.0)
    return (frame * silhouette).astype(np.float32)


def _distance_to_discontinuity(depth: np.ndarray, camera: ViewCamera, settings: BakeSettings) -> np.ndarray:
    """Chessboard distance in pixels from each pixel to the nearest depth discontinuity, capped past the fade."""
    finite = np.isfinite(depth)
    safe = np.where(finite, depth, 0.0).astype(np.float32)
    jump = np.broadcast_to(_pixel_footprint(camera, safe) * np.float32(settings.silhouette_jump_pixels), depth.shape)
    edge = np.zeros(depth.shape, dtype=bool)
    for a, b in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                 ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))):
        both = finite[a] & finite[b]
        step = (finite[a] != finite[b]) | (both & (np.abs(safe[a] - safe[b]) > np.minimum(jump[a], jump[b])))
        edge[a] |= step
        edge[b] |= step
    cap = int(np.ceil(settings.silhouette_fade_pixels)) + 2
    distance = np.full(depth.shape, float(cap), dtype=np.float32)
    reached = edge
    for steps in range(cap):
        distance[reached & (distance > steps)] = steps
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        reached = grown
    return distance


def _bilinear(image: np.ndarray, width: int, height: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a (height * width, C) top-row-first image at continuous pixel coordinates
    (pixel centres at +0.5)."""
    fx = np.clip(x - np.float32(0.5), 0.0, width - 1.0)
    fy = np.clip(y - np.float32(0.5), 0.0, height - 1.0)
    x0 = np.minimum(fx.astype(np.int32), max(width - 2, 0))
    y0 = np.minimum(fy.astype(np.int32), max(height - 2, 0))
    tx = (fx - x0)[:, None]
    ty = (fy - y0)[:, None]
    step_x = 1 if width > 1 else 0
    step_y = width if height > 1 else 0
    i00 = y0 * width + x0
    top = np.take(image, i00, axis=0)
    top += tx * (np.take(image, i00 + step_x, axis=0) - top)
    bottom = np.take(image, i00 + step_y, axis=0)
    bottom += tx * (np.take(image, i00 + step_y + step_x, axis=0) - bottom)
    top += ty * (bottom - top)
    return top


def bake_texture(texels: SurfaceTexels, views: list[BakeView],
                 settings: BakeSettings = BakeSettings()) -> tuple[np.ndarray, GatheredTexels]:
    """The (size, size, channels) top-row-first texture the views paint on the texels, complete:
    unseen texels filled across the surface, the gutter padded. Also returns what was gathered."""
    gathered = gather_views(texels, views, settings)
    if not gathered.seen.any():
        raise ValueError("views see none of the surface: no view has it in frame, unoccluded and facing it")
    colour = fill_unseen(texels.position, gathered.colour, gathered.seen, texels.spacing)
    size = texels.size
    texture = np.zeros((size * size, colour.shape[1]), dtype=np.float32)
    texture[texels.index] = colour
    return pad_gutter(texture.reshape(size, size, -1), texels.mask), gathered
