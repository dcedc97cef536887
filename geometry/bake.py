"""Gather what several views saw of a surface into its texels (the heart of baking views into a UV map).

For every texel (``geometry.uv_raster.SurfaceTexels``) and every view: project its world
position into the view; it is visible when inside the frame and its view depth matches
the view's depth image (so any object in front occludes it); its weight is how
frontally the view sees it (|cos| of the angle between the surface normal and the view
ray, to a power, zero past a cut-off angle: faces are two-sided, as a render shows them,
so flipped or inconsistent normals bake as the views saw them), faded near the frame edge
and near depth discontinuities (silhouettes, where a bilinear sample would take in the
background); the colour is the bilinear sample of the view's image; the texel's colour is
the weighted average over the views, pooled over every surface point the texel shows
(shared UV texels: the views that see any of them). All numpy, vectorised over texels, in
coordinates relative to the texels' origin (float32 stays exact far from the world origin).

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
# A point is the surface a view shows only where that surface's normal (from the view's depth) is within
# 60 degrees of the point's, up to sign (faces are two-sided).
_NORMAL_AGREEMENT = 0.5


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
    prepared = [_PreparedView(view, settings, texels.origin) for view in views]
    gathered = _gather_points(texels.position, texels.normal, prepared, channels)
    if len(texels.extra_owner):
        extra = _gather_points(texels.extra_position, texels.extra_normal, prepared, channels)
        gathered = _pool(gathered, extra, texels.extra_owner)
    return gathered


def _gather_points(position: np.ndarray, normal: np.ndarray, prepared: list[_PreparedView],
                   channels: int) -> GatheredTexels:
    """What the views see at each surface point (positions relative to the views' origin)."""
    count = len(position)
    colour = np.zeros((count, channels), dtype=np.float32)
    weight = np.zeros(count, dtype=np.float32)
    best_view = np.full(count, -1, dtype=np.int16)
    best_cosine = np.zeros(count, dtype=np.float32)
    # Texels in cache-sized chunks: every step below is a pass over arrays of the chunk's length;
    # colours are planar (one 1D array per channel): 1D gathers and scatters are numpy's fast ones.
    for start in range(0, count, _CHUNK_TEXELS):
        chunk = slice(start, min(start + _CHUNK_TEXELS, count))
        surface = _ChunkSurface(position[chunk], normal[chunk])
        length = chunk.stop - start
        chunk_best_view = best_view[chunk]
        chunk_best_cosine = best_cosine[chunk]
        all_hits, all_weights, all_samples = [], [], [[] for _ in range(channels)]
        for view_index, view in enumerate(prepared):
            hits, view_weight, cosine, samples = view.gather(surface)
            all_hits.append(hits)
            all_weights.append(view_weight)
            for channel in range(channels):
                all_samples[channel].append(view_weight * samples[channel])
            better = cosine > chunk_best_cosine[hits]
            chunk_best_cosine[hits[better]] = cosine[better]
            chunk_best_view[hits[better]] = view_index
        # One pass per channel over every view's samples (bincount: numpy's fastest scatter-add).
        hits = np.concatenate(all_hits)
        chunk_weight = np.bincount(hits, weights=np.concatenate(all_weights), minlength=length)
        weight[chunk] = chunk_weight
        seen = chunk_weight > 0
        for channel in range(channels):
            total = np.bincount(hits, weights=np.concatenate(all_samples[channel]), minlength=length)
            colour[chunk, channel][seen] = total[seen] / chunk_weight[seen]
    return GatheredTexels(colour=colour, weight=weight, best_view=best_view, best_cosine=best_cosine)


def _pool(texels: GatheredTexels, extra: GatheredTexels, owner: np.ndarray) -> GatheredTexels:
    """The texels' gathers with their extra surface points' pooled in (``owner``: the texel of each point):
    every view that sees any of a texel's points contributes with its weight; the best view is the most
    frontal over all of them."""
    count = len(texels.weight)
    weight = texels.weight.astype(np.float64) + np.bincount(owner, weights=extra.weight, minlength=count)
    seen = weight > 0
    colour = np.zeros_like(texels.colour)
    for channel in range(colour.shape[1]):
        total = texels.colour[:, channel] * texels.weight.astype(np.float64) \
            + np.bincount(owner, weights=extra.colour[:, channel] * extra.weight, minlength=count)
        colour[seen, channel] = total[seen] / weight[seen]
    best_cosine = texels.best_cosine.copy()
    np.maximum.at(best_cosine, owner, extra.best_cosine)
    best_view = texels.best_view.copy()
    wins = (extra.best_cosine > texels.best_cosine[owner]) & (extra.best_cosine == best_cosine[owner])
    best_view[owner[wins]] = extra.best_view[wins]
    return GatheredTexels(colour=colour, weight=weight.astype(np.float32), best_view=best_view,
                          best_cosine=best_cosine)


class _ChunkSurface:
    """A chunk of texels' positions and normals, with the view-independent products every view needs."""

    def __init__(self, position: np.ndarray, normal: np.ndarray) -> None:
        self.position = position
        self.normal = normal
        self.position_planes = np.ascontiguousarray(position.T)  # (3, n): 1D gathers per axis
        self.normal_dot_position = np.einsum("ij,ij->i", normal, position)
        self.position_squared = np.einsum("ij,ij->i", position, position)


class _PreparedView:
    """A view with what every chunk of texels needs from it computed once."""

    def __init__(self, view: BakeView, settings: BakeSettings, origin: np.ndarray) -> None:
        camera = view.camera
        origin = np.asarray(origin, dtype=np.float64)
        self.width, self.height = camera.width, camera.height
        self.ortho = camera.ortho
        self.forward = camera.forward.astype(np.float32)
        self.location = (camera.location - origin).astype(np.float32)  # relative to the texels' origin
        world_to_clip = camera.projection @ camera.view_matrix
        x_row, y_row, w_row = world_to_clip[0], world_to_clip[1], world_to_clip[3]
        # Rows giving (pixel x * w, pixel y * w, w, view depth) in one product; pixel = row / w, the frame
        # of ViewCamera.pixels_from_ndc: x = (ndc x + 1) * width / 2, y = (1 - ndc y) * height / 2.
        # Positions are relative to ``origin``: its product goes into the offsets, in float64.
        rows = np.stack([0.5 * self.width * (x_row + w_row), 0.5 * self.height * (w_row - y_row), w_row,
                         -camera.view_matrix[2]])
        self.rows = np.ascontiguousarray(rows[:, :3], dtype=np.float32)
        self.offsets = (rows[:, :3] @ origin + rows[:, 3]).astype(np.float32)[:, None]
        footprint = 2.0 / (abs(camera.projection[0, 0]) * camera.width)
        # Depth test slack: the texel and the pixel centre are up to ~1 pixel apart across a surface whose
        # depth changes by tan(angle) per unit across; 1 + tan <= 2 / cos bounds it.
        self.slack = np.float32(2.0 * footprint * settings.depth_tolerance_pixels)
        self.depth = np.ascontiguousarray(view.depth, dtype=np.float32).ravel()
        self.confidence = _confidence(view, settings).ravel()
        self.planes = [np.ascontiguousarray(view.image[..., c], dtype=np.float32).ravel()
                       for c in range(view.image.shape[2])]
        self.surface_normal = _depth_normals(camera, view.depth)
        self.cutoff = np.float32(np.cos(np.radians(settings.cutoff_degrees)))
        self.ramp = np.float32(1.0 / max(settings.cutoff_ramp, 1e-6))
        self.power = settings.cosine_power

    def gather(self, surface: _ChunkSurface):
        """(texel indices seen, their weights, their cos, their bilinear colour samples) for a chunk."""
        hits, view_weight, cosine, x, y = self.locate(surface)
        return hits, view_weight, cosine, _bilinear(self.planes, self.width, self.height, x, y)

    def locate(self, surface: _ChunkSurface):
        """(texel indices seen, their weights, their cos, their continuous pixel x, y) for a chunk: the gather
        before it reads the image."""
        # |cos|: a face is seen from whichever side the view is on (the depth test decides what is hidden)
        if self.ortho:
            cosine = surface.normal @ -self.forward
        else:
            # n.(c - p) / |c - p| with n.p and |p|^2 computed once for all views
            cosine = surface.normal @ self.location - surface.normal_dot_position
            distance_squared = surface.position_squared - 2.0 * (surface.position @ self.location) \
                + np.float32(self.location @ self.location)
            cosine /= np.sqrt(np.maximum(distance_squared, np.float32(1e-20)))
        hits = np.flatnonzero(np.abs(cosine) > self.cutoff)
        cosine = cosine[hits]
        cosine = np.abs(cosine)
        projected = self.rows @ np.take(surface.position_planes, hits, axis=1) + self.offsets
        inverse_w = np.float32(1.0) / projected[2]
        x = projected[0] * inverse_w
        y = projected[1] * inverse_w
        depth = projected[3]
        column = x.astype(np.int32)  # x in (-1, 0) lands on column 0: border pixels have zero confidence
        row = y.astype(np.int32)
        inside = (column.view(np.uint32) < self.width) & (row.view(np.uint32) < self.height)
        pixel = np.where(inside, row * self.width + column, 0)
        slack = (np.float32(1.0) if self.ortho else depth) * self.slack / cosine
        visible = inside & (np.abs(depth - self.depth[pixel]) <= slack)
        # The surface the view shows there must be this face, from either side: not a face in front of it
        # whose depth is close (as at a silhouette's crease, where the far side of a closed mesh meets it).
        normal = np.take(surface.normal, hits, axis=0)
        agreement = np.zeros(len(hits), dtype=np.float32)
        for axis in range(3):
            agreement += normal[:, axis] * self.surface_normal[axis].take(pixel)
        visible &= np.abs(agreement) > _NORMAL_AGREEMENT
        view_weight = _power(cosine, self.power) * np.minimum((cosine - self.cutoff) * self.ramp, 1.0) \
            * self.confidence[pixel]
        keep = np.flatnonzero(visible & (view_weight > 0))
        return hits[keep], view_weight[keep], cosine[keep], x[keep], y[keep]


@dataclass(frozen=True)
class GatherTerms:
    """``gather_views`` as a linear map of the views' pixels (for fixed views its weights depend only on the
    geometry): point ``k``'s colour = sum over the terms e with ``point[e] == k`` of ``coefficient[e]`` x the
    views' pixels, flat and laid end to end, at ``pixel[e]``; divided by ``weight[k]`` (0: no view saw it).
    Extra surface points are pooled into their texels as ``gather_views`` pools them."""

    point: np.ndarray  # (E,) int64 the texel (index into the texels' points)
    pixel: np.ndarray  # (E,) int64 sum of the earlier views' height x width + the pixel's row x width + column
    coefficient: np.ndarray  # (E,) float32 the view's weight x the bilinear weight of that pixel
    weight: np.ndarray  # (n,) float32 every view's weight summed per texel


def gather_terms(texels: SurfaceTexels, views: list[BakeView], settings: BakeSettings = BakeSettings()) -> GatherTerms:
    """The terms of ``gather_views`` for ``views`` (their images are not read), built once for a bake repeated on
    new images of the same views (SYNC's latents, every step)."""
    if not views:
        raise ValueError("views must hold at least one view")
    prepared = [_PreparedView(view, settings, texels.origin) for view in views]
    starts = np.cumsum([0] + [view.camera.width * view.camera.height for view in views])
    point, pixel, coefficient, weight = _terms(texels.position, texels.normal, prepared, starts)
    count = len(texels.position)
    weights = np.bincount(weight[0], weights=weight[1], minlength=count)
    if len(texels.extra_owner):
        extra = _terms(texels.extra_position, texels.extra_normal, prepared, starts)
        owner = np.asarray(texels.extra_owner, dtype=np.int64)
        point = np.concatenate([point, owner[extra[0]]])
        pixel, coefficient = np.concatenate([pixel, extra[1]]), np.concatenate([coefficient, extra[2]])
        weights += np.bincount(owner[extra[3][0]], weights=extra[3][1], minlength=count)
    return GatherTerms(point=point, pixel=pixel, coefficient=coefficient, weight=weights.astype(np.float32))


def _terms(position: np.ndarray, normal: np.ndarray, prepared: list[_PreparedView], starts: np.ndarray):
    """(point, pixel, coefficient, (hit point, view weight)) of every view's bilinear sample of every point."""
    points, pixels, coefficients, hit_points, hit_weights = [], [], [], [], []
    for start in range(0, len(position), _CHUNK_TEXELS):
        chunk = slice(start, min(start + _CHUNK_TEXELS, len(position)))
        surface = _ChunkSurface(position[chunk], normal[chunk])
        for index, view in enumerate(prepared):
            hits, view_weight, _, x, y = view.locate(surface)
            fx, fy = x - np.float32(0.5), y - np.float32(0.5)  # as _bilinear samples
            x0, y0 = fx.astype(np.int32), fy.astype(np.int32)
            tx, ty = fx - x0, fy - y0
            corner = starts[index] + y0.astype(np.int64) * view.width + x0
            hit = hits.astype(np.int64) + start
            points += [hit] * 4
            pixels += [corner, corner + 1, corner + view.width, corner + view.width + 1]
            coefficients += [view_weight * (1 - tx) * (1 - ty), view_weight * tx * (1 - ty),
                             view_weight * (1 - tx) * ty, view_weight * tx * ty]
            hit_points.append(hit)
            hit_weights.append(view_weight)
    empty = np.zeros(0, np.int64)
    join = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
    return (join(points, np.int64), join(pixels, np.int64), join(coefficients, np.float32),
            (join(hit_points, np.int64) if hit_points else empty, join(hit_weights, np.float64)))


def _depth_normals(camera: ViewCamera, depth: np.ndarray) -> list[np.ndarray]:
    """Per pixel, the unit normal (facing the camera) of the surface the view shows, from its depth: three flat
    float32 arrays (x, y, z), zero where unknown. Each pixel takes the shorter of its two differences per
    axis, so a crease or silhouette next to it does not bend it."""
    origin, direction = camera.pixel_rays()
    along = np.maximum(direction @ camera.forward, 1e-12)
    # Points relative to the camera (float64), so far from the world origin they keep their precision.
    points = (origin - camera.location) + direction * (np.where(np.isfinite(depth), depth, np.nan) / along)[..., None]

    def shorter(axis: int) -> np.ndarray:
        step = np.diff(points, axis=axis)
        length = np.linalg.norm(step, axis=-1)
        length = np.where(np.isfinite(length), length, np.inf)
        pad = [(0, 0)] * 3
        pad[axis] = (1, 0)
        before = np.pad(step, pad, constant_values=np.nan)
        before_length = np.pad(length, pad[:2], constant_values=np.inf)
        pad[axis] = (0, 1)
        after = np.pad(step, pad, constant_values=np.nan)
        after_length = np.pad(length, pad[:2], constant_values=np.inf)
        return np.where((before_length <= after_length)[..., None], before, after)

    normal = np.cross(shorter(1), shorter(0))
    normal = np.nan_to_num(normal, nan=0.0, posinf=0.0, neginf=0.0)
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = normal / np.where(length > 0, length, 1.0)
    normal *= np.where(np.einsum("hwk,hwk->hw", normal, direction) > 0, -1.0, 1.0)[..., None]
    return [np.ascontiguousarray(normal[..., axis], dtype=np.float32).ravel() for axis in range(3)]


def _power(base: np.ndarray, exponent: float) -> np.ndarray:
    """``base ** exponent``, by multiplication for small whole exponents (np.power is slow)."""
    if exponent == int(exponent) and 1 <= exponent <= 4:
        result = base.copy()
        for _ in range(int(exponent) - 1):
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
    # The border pixels get exactly 0 (to_edge = 0.5): _bilinear relies on it to skip clipping.
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


def _bilinear(planes: list[np.ndarray], width: int, height: int, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Bilinear samples of a top-row-first image, one flat (height * width) array per channel, at continuous
    pixel coordinates (pixel centres at +0.5): one array of samples per channel."""
    # No clipping: the samples come from pixels with non-zero confidence, never the frame's border pixels,
    # so 0.5 <= x < width - 0.5 and the four neighbours are inside the frame.
    fx = x - np.float32(0.5)
    fy = y - np.float32(0.5)
    x0 = fx.astype(np.int32)
    y0 = fy.astype(np.int32)
    tx = fx - x0
    ty = fy - y0
    i00 = y0 * width + x0
    i01, i10 = i00 + 1, i00 + width
    i11 = i10 + 1
    samples = []
    for plane in planes:
        top = plane.take(i00)
        top += tx * (plane.take(i01) - top)
        bottom = plane.take(i10)
        bottom += tx * (plane.take(i11) - bottom)
        top += ty * (bottom - top)
        samples.append(top)
    return samples


def merge_gathered(parts: list[GatheredTexels]) -> GatheredTexels:
    """One gather from several gathers of the same texels: objects sharing one mesh share its UV map and
    so one texture; each instance is gathered at its own place and the weighted averages are pooled."""
    if not parts:
        raise ValueError("parts must hold at least one gather")
    if any(len(part.weight) != len(parts[0].weight) for part in parts):
        raise ValueError("parts must all gather the same texels (objects sharing one mesh)")
    weight = np.sum([part.weight for part in parts], axis=0)
    total = np.sum([part.colour * part.weight[:, None] for part in parts], axis=0)
    seen = weight > 0
    colour = np.zeros_like(total)
    colour[seen] = total[seen] / weight[seen, None]
    cosines = np.stack([part.best_cosine for part in parts])
    best = cosines.argmax(axis=0)
    columns = np.arange(len(weight))
    return GatheredTexels(colour=colour.astype(np.float32), weight=weight.astype(np.float32),
                          best_view=np.stack([part.best_view for part in parts])[best, columns],
                          best_cosine=cosines[best, columns])


def finish_texture(texels: SurfaceTexels, gathered: GatheredTexels) -> np.ndarray:
    """The (size, size, channels) top-row-first texture from a gather: unseen texels filled across the
    surface, the gutter padded."""
    if not gathered.seen.any():
        raise ValueError("views see none of the surface: no view has it in frame, unoccluded and facing it")
    colour = fill_unseen(texels.position, gathered.colour, gathered.seen, texels.spacing)
    size = texels.size
    texture = np.zeros((size * size, colour.shape[1]), dtype=np.float32)
    texture[texels.index] = colour
    # Fill and gutter are weighted means of the seen colours, so within their range - but the float32 means
    # round up to 2 ulps past it (1 + 2.4e-7 from views that are all 1.0), which the engine refuses as the
    # init image SEQUENTIAL draws from the texture so far: clip to the range the views gave.
    seen = gathered.colour[gathered.seen]
    return np.clip(pad_gutter(texture.reshape(size, size, -1), texels.mask), seen.min(axis=0), seen.max(axis=0))


def bake_texture(texels: SurfaceTexels, views: list[BakeView],
                 settings: BakeSettings = BakeSettings()) -> tuple[np.ndarray, GatheredTexels]:
    """The (size, size, channels) top-row-first texture the views paint on the texels, complete:
    unseen texels filled across the surface, the gutter padded. Also returns what was gathered."""
    gathered = gather_views(texels, views, settings)
    return finish_texture(texels, gathered), gathered
