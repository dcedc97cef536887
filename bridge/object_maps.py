"""Whole Object with Material Maps (issue 30): each view's maps baked into the meshes' UV maps.

Every view image gets its maps from the engine (``Engine.material_maps``, on the worker); albedo, roughness
and metallic are baked exactly like the colour (``object_bake.bake_mesh``: the same weights, occlusion, fill
and gutter); the normals go camera frame -> world -> each mesh's object space -> the tangent space of its
render UV map (``geometry.tangent_bake``), with the MikkTSpace frames read on the main thread before the run
(``capture_frames``). Height is refused for Whole Object before anything runs (``pbr_maps_writer``).
"""

from __future__ import annotations

import dataclasses
import traceback

import bpy
import numpy as np

from ..engine import GenerationCancelled
from ..engine.material_maps_request import MaterialMapsResult
from ..geometry.bake import BakeView
from ..geometry.tangent_bake import bake_tangent_normals
from ..geometry.tangent_normals import camera_to_world
from . import pbr_maps_writer, results
from .job import kept_on_failure
from .object_bake import bake_mesh, bake_views
from .pbr_tangents import tangent_frames


def capture_frames(surfaces, depsgraph: bpy.types.Depsgraph) -> dict[str, list]:
    """Mesh name -> [(frames, world triangles)] per object using it, for its render UV map (main thread)."""
    frames = {}
    for mesh in surfaces:
        frames[mesh.mesh_name] = [tangent_frames(bpy.data.objects[name], depsgraph, mesh.uv_name)
                                  for name in mesh.object_names]
    return frames


def bake_maps(engine, job, captured, views: list[np.ndarray], frames: dict[str, list]):
    """(one ``MaterialMapsResult`` per mesh, None) or (None, why) when the maps failed (the texture is kept);
    a cancel propagates. Worker thread, numpy only."""
    return kept_on_failure(lambda: _bake_maps(engine, job, captured, views, frames))


def _bake_maps(engine, job, captured, views, frames) -> list[MaterialMapsResult]:
    per_view = []
    for index, view in enumerate(views):
        request = dataclasses.replace(job.maps, image=np.ascontiguousarray(np.clip(view[..., :3], 0.0, 1.0),
                                                                           dtype=np.float32))
        per_view.append(engine.material_maps(request, on_progress=job._on_progress, cancel_event=job.cancel_event))
    kinds = list(per_view[0].maps)
    passes = captured.passes[:len(views)]
    baked = []
    for mesh in captured.meshes:
        if job.cancel_event.is_set():
            raise GenerationCancelled("cancelled while baking the material maps")
        maps = {}
        for kind in kinds:
            images = [result.maps[kind] for result in per_view]
            if kind == "normal":
                world = [BakeView(p.camera, camera_to_world(image, p.camera.world_matrix).astype(np.float32), p.depth)
                         for p, image in zip(passes, images)]
                mesh_frames = frames[mesh.mesh_name]
                maps[kind] = bake_tangent_normals(mesh.texels, world, [f for f, _ in mesh_frames],
                                                  [corners for _, corners in mesh_frames])
                continue
            stacked = [image if image.ndim == 3 else image[..., None] for image in images]
            texture = bake_mesh(mesh, bake_views(passes, stacked)).texture
            maps[kind] = texture if kind == "albedo" else texture[..., 0]
        recipes = {kind: dict(per_view[0].recipes.get(kind, {}), pbr_views=len(views)) for kind in kinds}
        baked.append(MaterialMapsResult(maps=maps, recipes=recipes))
    return baked


def write_maps(context: bpy.types.Context, textures: list, baked_maps: list[MaterialMapsResult],
               keep_history: bool) -> list[tuple[str, str]]:
    """Each mesh's maps beside its texture in every material that shows it, through its UV map; all or
    nothing. ``textures``: (image, ``BakedMesh``) as ``ObjectRun`` made them."""
    changes = results.Changes()
    made = []
    try:
        problems = []
        for (image, baked), maps in zip(textures, baked_maps):
            recipe = results.recipe_of(image)
            images, lines = pbr_maps_writer.write_maps(changes, image, maps, recipe, baked.uv_name, keep_history)
            made.append((image.name, images))
            problems += lines
    except Exception as error:
        traceback.print_exc()
        changes.rollback()
        return [("WARNING", f"the textures were generated and kept, but their material maps could not be written: "
                            f"{error}")]
    changes.commit()
    for source_name, images in made:
        pbr_maps_writer.settle_names(images, source_name)
    names = ", ".join(image.name for _, images in made for image in images.values())
    return [("WARNING", line) for line in problems] + [("INFO", f"Material maps: {names}")]
