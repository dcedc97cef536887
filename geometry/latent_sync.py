"""``object_method = SYNC`` (issue 29): where each view's *latent* pixels land in one shared latent texture.

A view of ``W x H`` pixels has ``W/8 x H/8`` latents. SYNC keeps one latent texture (``size x size``
texels, ``channels`` deep, top row first like every texture here) in the object's UV map; at every
synchronised step each view's predicted clean latents are baked into it and rendered back.

Per view and latent pixel (``LatentView``): the texel it sees (nearest: the texel whose square holds
the pixel centre's UV; UVs wrap like Blender's Repeat extension, so a UV tile is read modulo 1), whether
the object is visible there (covered by the object and, with ``scene_depth``, not behind other scene
geometry) and ``|cos|`` of the angle between the shading normal and the pixel's ray (faces are two-sided,
as in the RGB bake). The bake weight is ``visibility x cos^k`` (``engine/sync.py``).

Latent texture size rule (``latent_texture_size``): start from the texture's own latent scale
(``texture_size / 8``, what the VAE would make of the final texture) and double it until no two latent
pixels of any one view read the same texel - the views' texel density decides, so a view that sees a
small UV island large gets the texels it needs. Capped at ``MAX_LATENT_TEXTURE``; past that, the size is
refused by name. Nearest lookup and unique reads keep rendered noise N(0, 1) in every view: an
interpolated or duplicated read would shrink or correlate it (``render_nearest``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bake import BakeSettings, BakeView, gather_terms, gather_views, merge_gathered
from .camera import ViewCamera
from .normals import view_normals
from .raster import rasterize
from .sequential import pixel_uv, visible_in_scene
from .uv_raster import SurfaceTexels

MAX_LATENT_TEXTURE = 4096
LATENT_SCALE = 8  # pixels per latent pixel (the SD / SDXL VAE)


@dataclass(frozen=True)
class LatentSurface:
    """What one view sees at latent resolution, before a texture size is chosen."""

    uv: np.ndarray  # (h, w, 2) float32 UV of the surface at each latent pixel centre
    visible: np.ndarray  # (h, w) bool
    cosine: np.ndarray  # (h, w) float32 |cos| of the view angle, 0 where not visible


@dataclass(frozen=True)
class LatentView:
    """One view's correspondence with a latent texture of ``size x size`` texels."""

    texel: np.ndarray  # (h, w) int64: row * size + column of the texel each latent pixel sees; -1 = background
    cosine: np.ndarray  # (h, w) float32 |cos| of the view angle, 0 on background
    size: int  # the latent texture's side (the largest one's for several meshes, see ``combine_meshes``)
    count: int = 0  # texels in all; 0 = size * size

    @property
    def texels(self) -> int:
        return int(self.count) or int(self.size) * int(self.size)

    @property
    def visible(self) -> np.ndarray:
        return self.texel >= 0

    def duplicate_reads(self) -> int:
        """How many visible latent pixels read a texel that another latent pixel of this view reads too."""
        texels = self.texel[self.texel >= 0]
        return int(len(texels) - len(np.unique(texels)))


def latent_surface(camera: ViewCamera, triangles_world: np.ndarray, uv: np.ndarray, *,
                   corner_normals_world: np.ndarray | None = None,
                   scene_depth: np.ndarray | None = None) -> LatentSurface:
    """Rasterise ``triangles_world`` (n, 3, 3) with UVs ``uv`` (n, 3, 2) through ``camera`` - a camera at the
    *latent* size (the view's pixel size / 8). ``scene_depth`` (h, w): the whole scene's depth at that size."""
    triangles = np.asarray(triangles_world, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    if triangles.ndim != 3 or triangles.shape[1:] != (3, 3):
        raise ValueError(f"triangles_world must be (n, 3, 3); got {triangles.shape}")
    if uv.shape != triangles.shape[:2] + (2,):
        raise ValueError(f"uv must be (n, 3, 2) like triangles_world; got {uv.shape}")
    hits = rasterize(camera, triangles)
    coordinates, visible = pixel_uv(hits, uv)
    if scene_depth is not None:
        if scene_depth.shape != visible.shape:
            raise ValueError(f"scene_depth must be {visible.shape} (the latent size); got {scene_depth.shape}")
        visible = visible & visible_in_scene(hits, scene_depth)
    normals = view_normals(camera, triangles, hits, corner_normals_world)
    _, direction = camera.pixel_rays()
    direction_camera = direction @ camera.world_matrix[:3, :3]  # world -> camera space (rotation only)
    cosine = np.abs(np.einsum("hwd,hwd->hw", normals.astype(np.float64), direction_camera)).astype(np.float32)
    cosine = np.where(visible, np.minimum(cosine, 1.0), 0.0).astype(np.float32)
    return LatentSurface(uv=coordinates, visible=visible, cosine=cosine)


def latent_view(surface: LatentSurface, size: int) -> LatentView:
    """The nearest texel of a ``size x size`` latent texture under each visible latent pixel."""
    if int(size) < 1:
        raise ValueError(f"size must be positive; got {size}")
    size = int(size)
    u = surface.uv[..., 0].astype(np.float64)
    v = surface.uv[..., 1].astype(np.float64)
    column = np.floor(u * size).astype(np.int64) % size
    row = np.floor((1.0 - v) * size).astype(np.int64) % size
    texel = np.where(surface.visible, row * size + column, -1)
    return LatentView(texel=texel, cosine=surface.cosine, size=size)


def latent_texture_size(surfaces: list[LatentSurface], texture_size: int, *,
                        maximum: int = MAX_LATENT_TEXTURE) -> int:
    """The latent texture's side: ``texture_size / 8`` (at least 8), doubled until every view reads each texel
    at most once (see the module's rule). ValueError naming ``texture_size`` if that needs more than ``maximum``."""
    if int(texture_size) < 1:
        raise ValueError(f"texture_size must be positive; got {texture_size}")
    size = max(8, int(texture_size) // LATENT_SCALE)
    while True:
        if all(latent_view(surface, size).duplicate_reads() == 0 for surface in surfaces):
            return size
        if size * 2 > maximum:
            raise ValueError(
                f"texture_size {texture_size}: the views see the UV map so densely that a latent texture of "
                f"{maximum}² texels still has latent pixels sharing a texel (UV islands far too small for the "
                "views); scale the UV islands up or use fewer, wider views")
        size *= 2


def render_nearest(texture: np.ndarray, views: list[LatentView], background: np.ndarray) -> np.ndarray:
    """(V, C, h, w): each view's visible latent pixels read their texel of ``texture`` (C, size*size) - never
    interpolated - and every other pixel keeps ``background`` (V, C, h, w), the view's own values."""
    texture = np.asarray(texture)
    background = np.asarray(background)
    if background.ndim != 4 or background.shape[0] != len(views):
        raise ValueError(f"background must be (views={len(views)}, C, h, w); got {background.shape}")
    result = background.copy()
    for index, view in enumerate(views):
        if texture.shape != (background.shape[1], view.texels):
            raise ValueError(f"texture must be ({background.shape[1]}, {view.texels}); got {texture.shape}")
        if view.texel.shape != background.shape[2:]:
            raise ValueError(f"background views must be {view.texel.shape}; got {background.shape[2:]}")
        visible = view.texel >= 0
        result[index][:, visible] = texture[:, view.texel[visible]]
    return result


def merge_objects(views: list[LatentView]) -> LatentView:
    """One view of several objects that share a mesh (and so one latent texture): each latent pixel from the
    object it sees (their visibility is depth-tested against the whole scene, so at most one does)."""
    texel, cosine = views[0].texel.copy(), views[0].cosine.copy()
    for view in views[1:]:
        if view.size != views[0].size:
            raise ValueError("views must share one latent texture size")
        take = (texel < 0) & (view.texel >= 0)
        texel[take], cosine[take] = view.texel[take], view.cosine[take]
    return LatentView(texel=texel, cosine=cosine, size=views[0].size)


def combine_meshes(per_mesh: list[LatentView]) -> LatentView:
    """One view's latent pixels over several meshes, each with its own latent texture: the textures laid end to
    end (mesh m's texels after those of meshes 0..m-1, flat), so one bake and one render serve them all."""
    texel = np.full(per_mesh[0].texel.shape, -1, dtype=np.int64)
    cosine = np.zeros(per_mesh[0].cosine.shape, dtype=np.float32)
    offset = 0
    for view in per_mesh:
        take = (texel < 0) & (view.texel >= 0)
        texel[take] = view.texel[take] + offset
        cosine[take] = view.cosine[take]
        offset += view.texels
    return LatentView(texel=texel, cosine=cosine, size=max(view.size for view in per_mesh), count=offset)


class LatentBake:
    """The views' latents baked into the meshes' latent textures by *gathering*, like the RGB bake: every texel
    a view sees takes the bilinear sample of that view's latents where the texel projects (``geometry.bake``:
    depth test, |cos|^k weights, two-sided faces, shared texels pooled), so a texel finer than a latent pixel
    still hears every view that sees its surface. (Splatting each latent pixel into its nearest texel would
    only mix views whose pixels happen to land in one texel.) Callable on (V, h, w, C) float32 latents:
    ((texels, C) the weighted mean, (texels,) the weight sum, 0 = no view saw it), texels laid end to end
    per mesh as ``combine_meshes`` lays them."""

    def __init__(self, cameras: list[ViewCamera], depths: list[np.ndarray], meshes: list[list[SurfaceTexels]],
                 weight_exponent: float = 1.0) -> None:
        if len(cameras) != len(depths):
            raise ValueError(f"depths must be one per camera ({len(cameras)}); got {len(depths)}")
        for camera, depth in zip(cameras, depths):
            if depth.shape != (camera.height, camera.width):
                raise ValueError(f"depths must be at the cameras' (latent) size; got {depth.shape}")
        self.cameras, self.depths, self.meshes = cameras, depths, meshes
        # latent pixels are 8 image pixels wide: fades of about one latent pixel, the depth slack of the RGB bake
        self.settings = BakeSettings(cosine_power=float(weight_exponent), frame_fade_pixels=1.0,
                                     silhouette_fade_pixels=1.0)
        self.offsets = np.cumsum([0] + [texels[0].size ** 2 for texels in meshes])
        # The gather's weights depend only on the geometry: its terms are built once here, so that every step
        # only multiplies and sums (``geometry.bake.gather_terms``; the same numbers as ``gather_views``).
        blank = [BakeView(camera, np.zeros((camera.height, camera.width, 1), np.float32), depth)
                 for camera, depth in zip(cameras, depths)]
        rows, pixels, coefficients = [], [], []
        weight = np.zeros(self.texels, dtype=np.float64)
        for offset, texels in zip(self.offsets, self.meshes):
            for part in texels:  # objects sharing the mesh: pooled as merge_gathered pools them
                terms = gather_terms(part, blank, self.settings)
                slots = offset + np.asarray(part.index, dtype=np.int64)
                rows.append(slots[terms.point])
                pixels.append(terms.pixel)
                coefficients.append(terms.coefficient.astype(np.float64))
                weight[slots] += terms.weight
        self.rows, self.pixels = np.concatenate(rows), np.concatenate(pixels)
        self.coefficients = np.concatenate(coefficients)
        self.weight = weight.astype(np.float32)
        self.seen = self.weight > 0

    @property
    def texels(self) -> int:
        return int(self.offsets[-1])

    def __call__(self, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 4 or latents.shape[0] != len(self.cameras):
            raise ValueError(f"latents must be (views={len(self.cameras)}, h, w, C); got {latents.shape}")
        for index, camera in enumerate(self.cameras):  # the gather's pixel indices assume each view's own (h, w)
            if latents.shape[1:3] != (camera.height, camera.width):
                raise ValueError(f"latents of view {index + 1} must be {camera.height} x {camera.width} (h x w); "
                                 f"got {latents.shape[1]} x {latents.shape[2]}")
        planes = latents.reshape(-1, latents.shape[3])
        colour = np.zeros((self.texels, latents.shape[3]), dtype=np.float32)
        for channel in range(latents.shape[3]):
            total = np.bincount(self.rows, weights=self.coefficients * planes[self.pixels, channel],
                                minlength=self.texels)
            colour[self.seen, channel] = total[self.seen] / self.weight[self.seen]
        return colour, self.weight.copy()


def view_disagreement(texels: list[SurfaceTexels], views: list[BakeView],
                      settings: BakeSettings = BakeSettings()) -> float:
    """How much the views disagree about one mesh (the consistency metric of issue 29): each view gathered alone
    into the texels (``texels``: one ``SurfaceTexels`` per object using the mesh), then the mean absolute
    difference of two views' values over the texels both see, over every pair of views and every channel."""
    if len(views) < 2:
        raise ValueError(f"views must hold at least two views; got {len(views)}")
    alone = [merge_gathered([gather_views(part, [view], settings) for part in texels]) for view in views]
    total, count = 0.0, 0
    for first in range(len(alone)):
        for second in range(first + 1, len(alone)):
            both = alone[first].seen & alone[second].seen
            total += float(np.abs(alone[first].colour[both] - alone[second].colour[both]).sum())
            count += int(both.sum()) * alone[first].colour.shape[1]
    if count == 0:
        raise ValueError("views share no surface: nothing to compare")
    return total / count


def texel_disagreement(views: list[LatentView], latents: np.ndarray) -> float:
    """How much the views' latents disagree where SYNC's own correspondence says they see the same surface: for
    every pair of views, the mean absolute difference of their ``latents`` ((V, C, h, w), as the pipeline makes
    them) at the latent pixels that read the same texel (nearest lookup, ``LatentView.texel``), over every
    channel. Synchronised steps render one value per texel into every view, so this is 0 after them; the
    bilinear ``view_disagreement`` of the same latents also counts the resampling between the views' grids."""
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 4 or latents.shape[0] != len(views):
        raise ValueError(f"latents must be (views={len(views)}, C, h, w); got {latents.shape}")
    if len(views) < 2:
        raise ValueError(f"views must hold at least two views; got {len(views)}")
    reads = []
    for view, values in zip(views, latents):
        if view.texel.shape != values.shape[1:]:
            raise ValueError(f"latents must be at the views' latent size {view.texel.shape}; got {values.shape[1:]}")
        visible = view.texel >= 0
        texel = view.texel[visible]
        order = np.argsort(texel, kind="stable")
        reads.append((texel[order], values[:, visible][:, order]))  # (texels sorted,), (C, texels)
    total, count = 0.0, 0
    for first in range(len(reads)):
        for second in range(first + 1, len(reads)):
            (texel_a, values_a), (texel_b, values_b) = reads[first], reads[second]
            _, in_a, in_b = np.intersect1d(texel_a, texel_b, assume_unique=False, return_indices=True)
            total += float(np.abs(values_a[:, in_a].astype(np.float64) - values_b[:, in_b]).sum())
            count += len(in_a) * latents.shape[1]
    if count == 0:
        raise ValueError("views share no texel: nothing to compare")
    return total / count
