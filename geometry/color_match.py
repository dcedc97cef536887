"""Colour matching between the views of a Whole Object run (``color_match``, issue 31): each later view's colours
matched to the views before it on the surface they share, before the bake (``object_method`` GRID and SEQUENTIAL).

Pairing: the views' pixels meet in the texels (``geometry.bake``): view k gathered *alone* into the meshes' texels
gives, on every texel the earlier views saw too, one source colour (view k's bilinear sample where the texel
projects) and one target colour (the earlier views' weighted mean there, as the bake would make it) - the pairing
``geometry.latent_sync.view_disagreement`` measures with. The samples are weighted by how frontally view k sees
the texel and by the view's *region* (the pixels the transfer may change, gathered like a colour channel: the
object's pixels for GRID, the repainted pixels for SEQUENTIAL, whose kept pixels are the earlier views' already).

Transfers, per channel of a perceptual space (Oklab, below), so a cast in lightness does not tint and a tint does
not change lightness: ``REINHARD`` (Reinhard et al. 2001, "Color Transfer between Images") moves the source's
weighted mean and standard deviation onto the target's - an affine cast per channel is removed exactly;
``HISTOGRAM`` maps the source's weighted cumulative histogram onto the target's (quantile to quantile, piecewise
linear) - any monotone cast per channel. Each is fitted on the shared samples, then applied to every pixel of the
view's region (blended by the region's weight). Without enough shared surface a view is returned unchanged.

The space: the view images are display-referred sRGB. Blender's colour management (OCIO) has no Lab or Oklab
colour space in 4.2 or 5.0, but it converts sRGB to scene linear and scene linear to CIE XYZ (D65)
(``mathutils.Color.from_srgb_to_scene_linear``, ``from_scene_linear_to_xyz_d65``, both lines). So the bridge samples
those two conversions on the main thread (``bridge/color_space.py``): a table of sRGB -> scene linear (the
transfer curve is per channel) and the matrix scene linear -> XYZ; ``PerceptualSpace`` here applies them and then
Oklab's published definition from XYZ (Björn Ottosson, "A perceptual color space for image processing", 2020:
two matrices around a cube root) - a documented standard transform, not a hand-written gamma. Oklab rather than
CIE Lab: its hue lines are straighter (a shift in a/b does not turn blue into purple) and it needs no white point
choice beyond D65, the sRGB display's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bake import BakeSettings, BakeView, GatheredTexels, gather_views, merge_gathered
from .uv_raster import SurfaceTexels

COLOR_MATCH_METHODS = ("NONE", "HISTOGRAM", "REINHARD")
# Fewer shared texels than this and the statistics say more about the few texels than about the view: unchanged.
MIN_SHARED_SAMPLES = 64
# REINHARD: a standard deviation ratio past these bounds is a near-flat patch, not a cast; the scale is clamped.
SCALE_LIMITS = (0.25, 4.0)
# The statistics need far fewer samples than a 2048² texture has texels: a mesh with more covered texels is sampled
# at every n-th texel (texels come in triangle order, so the sample spreads over the whole surface), which makes
# matching a fraction of the bake's time.
MAX_SAMPLE_TEXELS = 1 << 18
# HISTOGRAM: the cumulative histograms are compared at this many quantiles.
HISTOGRAM_LEVELS = 256
# Linear -> sRGB goes through a table evenly spaced in linear values (a lookup, not a search per pixel): this many
# entries keep linear interpolation within 1e-6 of the inverse of the sRGB -> linear table. The worst place is the
# sRGB curve's toe, where its slope jumps (12.92 sRGB per linear below it, ~12.7 above): a step h = 1/65535 across
# that kink is off by at most h / 4 x 0.22 < 1e-6; elsewhere the curvature error h^2 / 8 x 2400 is below 1e-6 too.
_INVERSE_ENTRIES = 65536

# Oklab (Ottosson 2020): XYZ (D65) -> cone responses (LMS), then cube roots -> L, a, b.
_XYZ_TO_LMS = np.array([[0.8189330101, 0.3618667424, -0.1288597137],
                        [0.0329845436, 0.9293118715, 0.0361456387],
                        [0.0482003018, 0.2643662691, 0.6338517070]])
_LMS_TO_OKLAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                          [1.9779984951, -2.4285922050, 0.4505937099],
                          [0.0259040371, 0.7827717662, -0.8086757660]])


@dataclass(frozen=True)
class PerceptualSpace:
    """Display sRGB (0..1) <-> Oklab, from the colour management's own conversions (see the module docstring).

    ``srgb_to_linear``: (N,) scene-linear values of N sRGB values evenly spaced over 0..1, increasing;
    ``linear_to_xyz``: (3, 3) scene linear -> CIE XYZ (D65)."""

    srgb_to_linear: np.ndarray
    linear_to_xyz: np.ndarray

    def __post_init__(self) -> None:
        table = np.asarray(self.srgb_to_linear, dtype=np.float64)
        if table.ndim != 1 or len(table) < 2 or np.any(np.diff(table) <= 0):
            raise ValueError("srgb_to_linear must be an increasing table of at least two values")
        if np.shape(self.linear_to_xyz) != (3, 3) or abs(np.linalg.det(self.linear_to_xyz)) < 1e-9:
            raise ValueError(f"linear_to_xyz must be an invertible 3x3 matrix; got {np.shape(self.linear_to_xyz)}")
        object.__setattr__(self, "srgb_to_linear", table)
        object.__setattr__(self, "_to_lab", _XYZ_TO_LMS.T)  # row vectors: colours @ matrix.T
        rgb_to_lms = _XYZ_TO_LMS @ np.asarray(self.linear_to_xyz, dtype=np.float64)
        object.__setattr__(self, "_rgb_to_lms", rgb_to_lms.T)
        object.__setattr__(self, "_lms_to_rgb", np.linalg.inv(rgb_to_lms).T)
        inverse_grid = np.linspace(table[0], table[-1], _INVERSE_ENTRIES)
        object.__setattr__(self, "_linear_to_srgb", np.interp(inverse_grid, table, np.linspace(0.0, 1.0, len(table))))

    def to_oklab(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) display sRGB -> (..., 3) Oklab (float64)."""
        linear = _lookup(self.srgb_to_linear, 0.0, 1.0, np.asarray(rgb, dtype=np.float64))
        return np.cbrt(linear @ self._rgb_to_lms) @ _LMS_TO_OKLAB.T

    def to_srgb(self, lab: np.ndarray) -> np.ndarray:
        """(..., 3) Oklab -> (..., 3) display sRGB, clipped to 0..1 (the inverse of ``to_oklab`` in gamut)."""
        lms = np.asarray(lab, dtype=np.float64) @ _LMS_TO_OKLAB_INVERSE.T
        linear = (lms * lms * lms) @ self._lms_to_rgb
        table = self.srgb_to_linear
        return _lookup(self._linear_to_srgb, table[0], table[-1], linear)


def _lookup(table: np.ndarray, low: float, high: float, values: np.ndarray) -> np.ndarray:
    """Linear interpolation in ``table`` sampled evenly from ``low`` to ``high``, clamped to its ends (what
    ``np.interp`` gives, as an index computation instead of a binary search per value)."""
    position = np.clip((values - low) * ((len(table) - 1) / (high - low)), 0.0, len(table) - 1)
    index = np.minimum(position.astype(np.intp), len(table) - 2)
    fraction = position - index
    return table[index] + fraction * (table[index + 1] - table[index])


_LMS_TO_OKLAB_INVERSE = np.linalg.inv(_LMS_TO_OKLAB)


@dataclass(frozen=True)
class ColourTransfer:
    """A per-channel map of Oklab values: ``knots_in`` -> ``knots_out`` ((3, K) each, increasing inputs), linear
    between knots and continued with the end segments' slopes (REINHARD: two knots, one line) or slope 1
    (HISTOGRAM: values past the shared samples' range keep their distance to its ends)."""

    method: str
    knots_in: np.ndarray
    knots_out: np.ndarray
    samples: int  # the shared samples it was fitted on

    def __call__(self, lab: np.ndarray) -> np.ndarray:
        lab = np.asarray(lab, dtype=np.float64)
        result = np.empty_like(lab)
        for channel in range(3):
            x, y = self.knots_in[channel], self.knots_out[channel]
            values = lab[..., channel]
            if self.method == "REINHARD":
                slope = (y[1] - y[0]) / (x[1] - x[0])
                result[..., channel] = y[0] + (values - x[0]) * slope
                continue
            mapped = np.interp(values, x, y)
            mapped = np.where(values < x[0], values - x[0] + y[0], mapped)
            result[..., channel] = np.where(values > x[-1], values - x[-1] + y[-1], mapped)
        return result


def fit_transfer(source: np.ndarray, target: np.ndarray, weight: np.ndarray, method: str) -> ColourTransfer:
    """The ``method`` transfer taking ``source`` (n, 3) Oklab samples onto ``target`` (n, 3), each sample weighted
    by ``weight`` (n,) >= 0."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if method not in COLOR_MATCH_METHODS[1:]:
        raise ValueError(f"method must be one of {COLOR_MATCH_METHODS[1:]}; got {method!r}")
    if source.ndim != 2 or source.shape[1] != 3 or target.shape != source.shape or weight.shape != source.shape[:1]:
        raise ValueError(f"source and target must be (n, 3) and weight (n,); got {source.shape}, {target.shape}, "
                         f"{weight.shape}")
    if len(weight) == 0 or np.any(weight < 0) or weight.sum() <= 0:
        raise ValueError("weight must be non-negative with a positive sum")
    weight = weight / weight.sum()
    knots_in, knots_out = [], []
    for channel in range(3):
        s, t = source[:, channel], target[:, channel]
        if method == "REINHARD":
            mean_s, mean_t = float(weight @ s), float(weight @ t)
            deviation_s = float(np.sqrt(weight @ (s - mean_s) ** 2))
            deviation_t = float(np.sqrt(weight @ (t - mean_t) ** 2))
            scale = deviation_t / deviation_s if deviation_s > 1e-6 else 1.0
            scale = min(max(scale, SCALE_LIMITS[0]), SCALE_LIMITS[1])
            knots_in.append(np.array([mean_s, mean_s + 1.0]))
            knots_out.append(np.array([mean_t, mean_t + scale]))
        else:
            levels = (np.arange(HISTOGRAM_LEVELS) + 0.5) / HISTOGRAM_LEVELS
            x, y = _quantiles(s, weight, levels), _quantiles(t, weight, levels)
            x, inverse = np.unique(x, return_inverse=True)  # a flat stretch of the source maps to its mean
            y = np.bincount(inverse, weights=y) / np.bincount(inverse)
            if len(x) == 1:  # one value only: a shift
                x, y = np.array([x[0], x[0] + 1.0]), np.array([y[0], y[0] + 1.0])
            knots_in.append(x)
            knots_out.append(y)
    if method == "REINHARD":
        knots_in, knots_out = np.stack(knots_in), np.stack(knots_out)
    else:  # ragged after removing ties: kept as an object array of per-channel knots
        knots_in, knots_out = _ragged(knots_in), _ragged(knots_out)
    return ColourTransfer(method, knots_in, knots_out, len(source))


def _ragged(rows: list[np.ndarray]) -> np.ndarray:
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    return array


def _quantiles(values: np.ndarray, weight: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Weighted quantiles: each sample stands at the middle of its weight in the cumulative histogram."""
    order = np.argsort(values, kind="stable")
    ordered, ordered_weight = values[order], weight[order]
    cumulative = np.cumsum(ordered_weight) - 0.5 * ordered_weight
    return np.interp(levels, cumulative / ordered_weight.sum(), ordered)


def apply_transfer(image: np.ndarray, transfer: ColourTransfer, space: PerceptualSpace,
                   region: np.ndarray | None = None) -> np.ndarray:
    """(h, w, C) float32: ``image``'s colours (display sRGB, first three channels) through ``transfer`` in Oklab,
    blended by ``region`` (h, w) in 0..1 (None: every pixel); pixels with region 0 and other channels unchanged."""
    image = np.asarray(image, dtype=np.float32)
    result = image.copy()
    where = np.ones(image.shape[:2], dtype=bool) if region is None else np.asarray(region) > 0
    rgb = image[where][:, :3]
    mapped = space.to_srgb(transfer(space.to_oklab(rgb)))
    amount = 1.0 if region is None else np.asarray(region, dtype=np.float64)[where][:, None]
    result[where, :3] = (rgb + amount * (mapped - rgb)).astype(np.float32)
    return result


@dataclass
class ViewMatch:
    """One view matched: its image, the transfer (None: unchanged, too little shared surface) and the view's own
    gather per mesh on the sampled texels (``MAX_SAMPLE_TEXELS``; colours after the transfer, as far as the samples
    go) - what the next views match to."""

    image: np.ndarray
    transfer: ColourTransfer | None
    alone: list[GatheredTexels]


def match_view(meshes: list[list[SurfaceTexels]], earlier: list[GatheredTexels], view: BakeView, method: str,
               space: PerceptualSpace, region: np.ndarray | None = None,
               settings: BakeSettings = BakeSettings()) -> ViewMatch:
    """``view`` (display sRGB) matched to ``earlier`` (per mesh, the earlier views' gather of that mesh's texels,
    e.g. the bake so far) on the texels both see. ``meshes``: per mesh, one ``SurfaceTexels`` per object using it;
    ``region``: (h, w) 0..1, the pixels the transfer may change (None: all), also weighting the samples."""
    if len(earlier) != len(meshes):
        raise ValueError(f"earlier must hold one gather per mesh ({len(meshes)}); got {len(earlier)}")
    steps = [_sample_step(texels) for texels in meshes]
    meshes = [[_thin(part, step) for part in texels] for texels, step in zip(meshes, steps)]
    earlier = [_thin_gathered(before, step) for before, step in zip(earlier, steps)]
    image, alone = _gather_alone(meshes, view, region, settings)
    source, target, weight = [], [], []
    for gathered, before in zip(alone, earlier):
        shared = gathered.seen & before.seen
        sample_weight = gathered.weight[shared] * np.clip(gathered.colour[shared, 3], 0.0, 1.0)
        keep = sample_weight > 0
        source.append(gathered.colour[shared][keep, :3])
        target.append(before.colour[shared][keep, :3])
        weight.append(sample_weight[keep])
    count = sum(len(w) for w in weight)
    if method == "NONE" or count < MIN_SHARED_SAMPLES:
        return ViewMatch(image, None, _colour_only(alone))
    transfer = fit_transfer(space.to_oklab(np.concatenate(source)), space.to_oklab(np.concatenate(target)),
                            np.concatenate(weight), method)
    matched = apply_transfer(image, transfer, space, region)
    for gathered in alone:  # what the next views see of this one: its samples through the same transfer
        seen = gathered.seen
        rgb = gathered.colour[seen, :3].astype(np.float64)
        amount = np.clip(gathered.colour[seen, 3:4], 0.0, 1.0)
        gathered.colour[seen, :3] = rgb + amount * (space.to_srgb(transfer(space.to_oklab(rgb))) - rgb)
    return ViewMatch(matched, transfer, _colour_only(alone))


def _sample_step(texels: list[SurfaceTexels]) -> int:
    return max(1, -(-len(texels[0].index) // MAX_SAMPLE_TEXELS))


def _thin(texels: SurfaceTexels, step: int) -> SurfaceTexels:
    """Every ``step``-th texel (its own surface point only: enough for statistics)."""
    if step == 1:
        return texels
    return SurfaceTexels(texels.size, texels.index[::step], texels.position[::step], texels.normal[::step],
                         texels.triangle[::step], 0, texels.spacing, texels.origin)


def _thin_gathered(gathered: GatheredTexels, step: int) -> GatheredTexels:
    if step == 1:
        return gathered
    return GatheredTexels(gathered.colour[::step], gathered.weight[::step], gathered.best_view[::step],
                          gathered.best_cosine[::step])


def _gather_alone(meshes: list[list[SurfaceTexels]], view: BakeView, region: np.ndarray | None,
                  settings: BakeSettings) -> tuple[np.ndarray, list[GatheredTexels]]:
    """(the view's (h, w, 3) colours, per mesh its gather alone with the region as a fourth channel)."""
    image = np.asarray(view.image, dtype=np.float32)[..., :3]
    region_plane = np.ones(image.shape[:2], np.float32) if region is None else np.asarray(region, np.float32)
    if region_plane.shape != image.shape[:2]:
        raise ValueError(f"region must be {image.shape[:2]} like the view; got {region_plane.shape}")
    with_region = BakeView(view.camera, np.concatenate([image, region_plane[..., None]], axis=2), view.depth)
    alone = []
    for texels in meshes:
        parts = [gather_views(part, [with_region], settings) for part in texels]
        alone.append(parts[0] if len(parts) == 1 else merge_gathered(parts))
    return image, alone


def _colour_only(alone: list[GatheredTexels]) -> list[GatheredTexels]:
    return [GatheredTexels(g.colour[:, :3].copy(), g.weight, g.best_view, g.best_cosine) for g in alone]


def match_views(meshes: list[list[SurfaceTexels]], views: list[BakeView], method: str, space: PerceptualSpace,
                regions: list[np.ndarray | None] | None = None,
                settings: BakeSettings = BakeSettings()) -> list[ViewMatch]:
    """Every view after the first matched, in order, to the views before it (already matched): GRID's views,
    generated together. View 1 is the reference and comes back unchanged."""
    if method not in COLOR_MATCH_METHODS:
        raise ValueError(f"method must be one of {COLOR_MATCH_METHODS}; got {method!r}")
    regions = regions if regions is not None else [None] * len(views)
    if len(regions) != len(views):
        raise ValueError(f"regions must hold one region per view ({len(views)}); got {len(regions)}")
    meshes = [[_thin(part, _sample_step(texels)) for part in texels] for texels in meshes]
    results, totals = [], None
    for view, region in zip(views, regions):
        if totals is None:  # the reference
            image, alone = _gather_alone(meshes, view, region, settings)
            result = ViewMatch(image, None, _colour_only(alone))
        else:
            result = match_view(meshes, _mean(totals), view, method, space, region, settings)
        results.append(result)
        totals = _accumulate(totals, result.alone)
    return results


def _accumulate(totals, alone: list[GatheredTexels]):
    """Running weighted sums (colour x weight, weight) per mesh."""
    added = [(g.colour.astype(np.float64) * g.weight[:, None], g.weight.astype(np.float64)) for g in alone]
    if totals is None:
        return added
    return [(colour + more_colour, weight + more_weight)
            for (colour, weight), (more_colour, more_weight) in zip(totals, added)]


def _mean(totals) -> list[GatheredTexels]:
    means = []
    for colour, weight in totals:
        seen = weight > 0
        mean = np.zeros(colour.shape, np.float32)
        mean[seen] = colour[seen] / weight[seen, None]
        count = len(weight)
        means.append(GatheredTexels(mean, weight.astype(np.float32), np.full(count, -1, np.int16),
                                    np.zeros(count, np.float32)))
    return means
