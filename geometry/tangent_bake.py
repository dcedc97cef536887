"""Whole Object normal maps (issue 30): each view's normals baked into a mesh's UV map in its tangent space.

The views' normals are carried camera frame -> world (``tangent_normals.camera_to_world``) by the caller and
baked like colour: the same gather (weights, occlusion, frame and silhouette fades, ``geometry.bake``), each
instance of a shared mesh gathered where it stands and taken into the mesh's object space (n_object ~ M^T n)
before the instances are pooled, then filled across the surface where no view saw it (in object space, so
the fill does not depend on the tangents), then put in the tangent space of each texel's triangle, and the
gutter padded as for colour.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .bake import BakeSettings, BakeView, gather_views, merge_gathered
from .fill import fill_unseen, pad_gutter
from .tangent_normals import TangentFrames, encode_normal_map, texel_tangent_normals
from .uv_raster import SurfaceTexels


def bake_tangent_normals(texels: list[SurfaceTexels], views: list[BakeView], frames: list[TangentFrames],
                         triangles_world: list[np.ndarray], settings: BakeSettings = BakeSettings()) -> np.ndarray:
    """The (size, size, 3) top-row-first normal map (0..1 colours, Normal Map node) of one mesh.

    ``texels``, ``frames`` and ``triangles_world`` (T, 3, 3): one per object using the mesh, the same
    triangles in the same order; ``views``: images of *world* normals (h, w, 3)."""
    if not (len(texels) == len(frames) == len(triangles_world)) or not texels:
        raise ValueError("texels, frames and triangles_world must hold one entry per object using the mesh")
    gathered = []
    for surface, frame in zip(texels, frames):
        part = gather_views(surface, views, settings)
        object_space = np.einsum("nj,njk->nk", part.colour.astype(np.float64), frame.linear[surface.triangle])
        gathered.append(dataclasses.replace(part, colour=object_space.astype(np.float32)))
    merged = merge_gathered(gathered)
    if not merged.seen.any():
        raise ValueError("views see none of the surface: no view has it in frame, unoccluded and facing it")
    first, frame = texels[0], frames[0]
    filled = fill_unseen(first.position, merged.colour, merged.seen, first.spacing)
    in_object_space = TangentFrames(frame.tangent, frame.sign, frame.normal, np.eye(3))
    # barycentrics from world positions: the same for every object using the mesh (an affine map keeps them)
    tangent = texel_tangent_normals(filled, first.position, first.triangle, triangles_world[0] - first.origin,
                                    in_object_space)
    size = first.size
    texture = np.zeros((size * size, 3), dtype=np.float32)
    texture[:] = (0.5, 0.5, 1.0)
    texture[first.index] = encode_normal_map(tangent)
    return pad_gutter(texture.reshape(size, size, 3), first.mask)
