"""Whole Object's ``color_match`` (issue 31): each later view's colours matched to the views before it on the surface
they share, before the bake (``geometry/color_match.py`` does the matching, numpy only).

- GRID: the views come out of one (or a few) generations together; after them, view 2 is matched to view 1, view 3
  to views 1-2 (as matched), and so on, each over its object pixels (``grid_views``).
- SEQUENTIAL: view k inpaints over the texture baked so far; its result is matched to that bake over the pixels it
  repainted, blended by the feathered repaint mask, so the pixels it kept stay exactly the earlier views'
  (``sequential_view``).
- SYNC: not applied. Its views are denoised through one latent texture and agree by construction; the setting is
  shown only for GRID and SEQUENTIAL, ignored for SYNC (``capture`` records NONE in the recipe there).

The perceptual space is sampled from Blender's colour management on the main thread (``perceptual_space``);
everything else runs on the worker.
"""

from __future__ import annotations

import numpy as np

from ..geometry import rasterize
from ..geometry.bake import BakeView
from ..geometry.color_match import PerceptualSpace, match_view, match_views
from ..geometry.sequential import visible_in_scene
from .object_bake import BakedMesh, MeshSurfaces, MeshTexels, ViewPasses

METHODS_MATCHED = ("GRID", "SEQUENTIAL")
# sRGB values sampled through the colour management: linear interpolation between them is exact to ~1e-7
_TABLE_ENTRIES = 4096


def color_match_of(settings) -> str:
    """The colour matching a run uses: the setting for GRID and SEQUENTIAL, NONE for SYNC (it does not apply)."""
    return settings.color_match if settings.object_method in METHODS_MATCHED else "NONE"


def perceptual_space() -> PerceptualSpace:
    """Display sRGB <-> Oklab through Blender's colour management (main thread): its sRGB -> scene linear curve
    sampled into a table, and its scene linear -> CIE XYZ (D65) matrix read off the unit colours (that transform is
    a matrix in Blender's OCIO configuration on 4.2 and 5.0). ``geometry.color_match`` explains why Oklab."""
    import mathutils

    values = np.linspace(0.0, 1.0, _TABLE_ENTRIES)
    table = np.array([mathutils.Color((v, v, v)).from_srgb_to_scene_linear()[0] for v in values])
    columns = [mathutils.Color(unit).from_scene_linear_to_xyz_d65() for unit in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    return PerceptualSpace(table, np.array([list(column) for column in columns]).T)


def object_pixels(passes: list[ViewPasses], surfaces: list[MeshSurfaces]) -> list[np.ndarray]:
    """(h, w) float32 per view: 1 where the view sees one of the objects being textured (not hidden by the scene)."""
    regions = []
    for view in passes:
        seen = np.zeros(view.depth.shape, dtype=bool)
        for mesh in surfaces:
            for _, positions, _ in mesh.triangles:
                seen |= visible_in_scene(rasterize(view.camera, positions), view.depth)
        regions.append(seen.astype(np.float32))
    return regions


def grid_views(method: str, space: PerceptualSpace, meshes: list[MeshTexels], passes: list[ViewPasses],
               views: list[np.ndarray], regions: list[np.ndarray]) -> list[np.ndarray]:
    """GRID's views, view 1 as it is and each later one matched to those before it (numpy; the worker)."""
    bake = [BakeView(view.camera, np.asarray(image, dtype=np.float32), view.depth) for view, image in zip(passes, views)]
    matched = match_views([mesh.texels for mesh in meshes], bake, method, space, regions)
    return [result.image for result in matched]


def sequential_view(method: str, space: PerceptualSpace, meshes: list[MeshTexels], so_far: list[BakedMesh],
                    passes: ViewPasses, image: np.ndarray, repainted: np.ndarray) -> np.ndarray:
    """A SEQUENTIAL view matched to the texture baked so far (``so_far``, in ``meshes``' order) where it repainted
    (``repainted``: the feathered repaint mask, 0..1)."""
    view = BakeView(passes.camera, np.asarray(image, dtype=np.float32), passes.depth)
    return match_view([mesh.texels for mesh in meshes], [mesh.gathered for mesh in so_far], view, method, space,
                      region=repainted).image
