"""``object_method = SYNC`` on the Whole Object target (issue 29): the latent correspondence and the
synchronised generation of every view (``engine.Engine.generate_sync``), both on the worker.

Worker, numpy only (``latent_views``, from the triangles the main thread copied out): each view's camera at its latent size (the same projection: it depends
on the aspect only), the whole scene's depth at that size, every textured object's surface through it
(``geometry.latent_sync``), one latent texture per mesh (sized by the rule documented there; objects
sharing a mesh share it), the meshes' textures laid end to end, and the texels of each latent texture for
the bake that gathers the views' latents into them at every synchronised step (``LatentBake``). The
decoded views are then baked with the RGB bake, as GRID's are.
"""

from __future__ import annotations

import dataclasses

from ..geometry.latent_sync import (LATENT_SCALE, LatentBake, LatentView, combine_meshes, latent_surface,
                                    latent_texture_size, latent_view, merge_objects)
from ..geometry.uv_raster import rasterize_uv_triangles
from ..geometry.uv_tiles import UVTileError
from ..geometry import rasterize
from .geometry import SceneTriangles
from .object_bake import MeshSurfaces, ViewPasses


def latent_views(passes: list[ViewPasses], meshes: list[MeshSurfaces], scene: SceneTriangles,
                 texture_size: int) -> tuple[list[LatentView], LatentBake]:
    """(every view's latent pixels -> texels of the meshes' latent textures, the bake that gathers the views'
    latents into those texels), see the module's docstring."""
    cameras = []
    for view in passes:
        camera = view.camera
        if camera.width % LATENT_SCALE or camera.height % LATENT_SCALE:
            raise ValueError(f"Width and Height must be multiples of {LATENT_SCALE} for Method Sync; got "
                             f"{camera.width}x{camera.height}")
        cameras.append(dataclasses.replace(camera, width=camera.width // LATENT_SCALE,
                                           height=camera.height // LATENT_SCALE))
    depths = [rasterize(camera, scene.corners).depth for camera in cameras]  # every object occludes
    per_mesh, texels = [], []
    for mesh in meshes:
        triangles = mesh.triangles
        surfaces = [[latent_surface(camera, positions, uv, corner_normals_world=normals, scene_depth=depth)
                     for uv, positions, normals in triangles] for camera, depth in zip(cameras, depths)]
        try:
            size = latent_texture_size([s for view in surfaces for s in view], texture_size)
        except ValueError as error:
            raise ValueError(f"Mesh '{mesh.mesh_name}': {error}") from error
        per_mesh.append([merge_objects([latent_view(s, size) for s in view]) for view in surfaces])
        try:
            texels.append([rasterize_uv_triangles(uv, positions, normals, size)
                           for uv, positions, normals in triangles])
        except UVTileError as error:  # UDIM: refused before anything is created
            raise ValueError(f"Mesh '{mesh.mesh_name}': {error}") from error
    views = [combine_meshes([views[index] for views in per_mesh]) for index in range(len(passes))]
    return views, LatentBake(cameras, depths, texels)
