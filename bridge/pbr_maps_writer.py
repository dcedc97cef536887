"""Material maps into Blender (issue 30): the engine's maps made ready for the material (a normal map of
real geometry put in its surface's tangent space) and written as images + wiring, for the
``material_maps`` operator (``material_maps.py``) and for Generate when Material Maps are set (``run.py``).
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass

import bpy
import numpy as np

from ..geometry import ViewCamera, rasterize
from ..geometry.tangent_normals import TangentFrames, encode_normal_map, pixel_tangent_normals
from . import pbr_wiring, results
from .pbr_tangents import joined_frames, tangent_frames


@dataclass
class ProjectedSurface:
    """PROJECT: which surface each pixel of the projected image shows, and its tangent frames (numpy only)."""

    camera_world_matrix: np.ndarray
    triangle: np.ndarray  # (h, w) -1 = background
    barycentric: np.ndarray  # (h, w, 3)
    frames: TangentFrames


def projected_surface(context: bpy.types.Context, objects: list[bpy.types.Object], uv_map: str,
                      camera: ViewCamera) -> ProjectedSurface:
    """The surface of ``objects`` each pixel of ``camera`` shows, with the tangent frames of ``uv_map``."""
    depsgraph = context.evaluated_depsgraph_get()
    frames, corners = joined_frames([tangent_frames(obj, depsgraph, uv_map) for obj in objects])
    hits = rasterize(camera, corners)
    return ProjectedSurface(camera.world_matrix, hits.triangle, hits.barycentric, frames)


def recorded_camera(recipe: dict, width: int, height: int) -> ViewCamera | None:
    """The projection's camera a PROJECT result's recipe recorded (``projection_camera``), else None."""
    camera = recipe.get("projection_camera")
    if camera is None:
        return None
    return ViewCamera(np.array(camera["world_matrix"], dtype=np.float64),
                      np.array(camera["projection"], dtype=np.float64), width, height,
                      bool(camera.get("ortho", False)))


def convert_normals(result, surface: ProjectedSurface | None):
    """The engine's camera-frame normal map as the Normal Map node reads it: 0..1 colours of the tangent-space
    normals (a flat texture's camera frame is its tangent space; a projection goes through its surface)."""
    normal = result.maps.get("normal")
    if normal is None:
        return result
    if surface is not None:
        normal = pixel_tangent_normals(normal, surface.camera_world_matrix, surface.triangle,
                                       surface.barycentric, surface.frames)
    maps = dict(result.maps, normal=encode_normal_map(normal))
    return dataclasses.replace(result, maps=maps)


def write_maps(changes: results.Changes, source: bpy.types.Image, result, recipe: dict, uv_map: str | None,
               keep_history: bool) -> tuple[dict[str, bpy.types.Image], list[str]]:
    """The map images of ``result`` (``MaterialMapsResult``, normal already encoded) and their wiring wherever
    ``source`` is a Base Color; returns the images and one line per thing not wired."""
    images = {}
    for kind in pbr_wiring.MAPS:
        if kind in result.maps:
            map_recipe = {**recipe, **result.recipes.get(kind, {}), "pbr_map": kind, "pbr_source": source.name}
            images[kind] = pbr_wiring.new_map_image(changes, source.name, kind, result.maps[kind], map_recipe)
    problems = []
    for material, node, shader in pbr_wiring.base_color_users(source):
        skipped = pbr_wiring.wire_maps(changes, material, node, shader, images, uv_map, keep_history)
        if skipped:
            problems.append(f"material '{material.name}': its shader has no input for {', '.join(skipped)} "
                            "(the images are kept)")
    for image in images.values():
        if image.users == 0:
            image.use_fake_user = True  # not in any material: kept on save
    return images, problems


def settle_names(images: dict[str, bpy.types.Image], source_name: str) -> None:
    """After the commit (the previous maps released): each map takes its plain name ``<source> <map>`` where a
    released predecessor held it (Blender had called the new one ``… .001``)."""
    for kind, image in images.items():
        wanted = pbr_wiring.map_image_name(source_name, kind)
        if image.name != wanted and bpy.data.images.get(wanted) is None:
            image.name = wanted


def write_after_generate(context: bpy.types.Context, image: bpy.types.Image, result, keep_history: bool,
                         projection: tuple[list[bpy.types.Object], str, ViewCamera] | None = None
                         ) -> list[tuple[str, str]]:
    """Generate with Material Maps: ``result``'s maps for the new ``image`` (already in place on its target),
    all or nothing; ``projection``: (objects, the projection UV map, its camera) for PROJECT. The reports."""
    changes = results.Changes()
    try:
        surface = None
        uv_map = None
        if projection is not None and "normal" in result.maps:
            objects, uv_map, camera = projection
            objects = [obj for obj in objects if obj.data.uv_layers.get(uv_map) is not None]
            if objects:
                surface = projected_surface(context, objects, uv_map, camera)
        ready = convert_normals(result, surface)
        recipe = results.recipe_of(image)
        images, problems = write_maps(changes, image, ready, recipe, uv_map, keep_history)
    except Exception as error:  # the generation is kept; its maps are not half written
        traceback.print_exc()
        changes.rollback()
        return [("WARNING", f"'{image.name}' was generated and kept, but its material maps could not be written: "
                            f"{error}")]
    changes.commit()
    settle_names(images, image.name)
    return [("WARNING", problem) for problem in problems] + [
        ("INFO", "Material maps: " + ", ".join(made.name for made in images.values()))]


def maps_after_generate(settings, options) -> object:
    """Material Maps set: the maps request to run on each result (its image and seed filled in then), checked
    now; None when no map is chosen. Height on Whole Object and PROJECT is refused (a ValueError saying why)."""
    from ..engine.material_maps_request import MAP_KINDS, MaterialMapsRequest
    from .requests import resolve_model_path

    chosen = tuple(kind for kind in MAP_KINDS if kind in settings.pbr_maps)
    if not chosen:
        return None
    if "HEIGHT" in chosen and settings.target in ("OBJECT", "PROJECT"):
        target = "Whole Object" if settings.target == "OBJECT" else "Project from Camera"
        raise ValueError(HEIGHT_REFUSED.format(target=target))
    request = MaterialMapsRequest(
        image=np.zeros((8, 8, 3), dtype=np.float32), maps=chosen,
        seamless=settings.seamless if settings.seamless in ("NONE", "X", "Y", "BOTH") else "NONE",
        pbr_model=resolve_model_path(settings.pbr_model), normals_model=resolve_model_path(settings.normals_model))
    request.validate()
    check_maps_models(request, options)
    return request


def check_maps_models(request, options) -> None:
    """The Marigold models ``request`` reads can be had and are Marigold pipelines of the right kind (read from
    the disk, nothing loaded), else ValueError saying which: refused before anything runs."""
    from ..engine import EngineError
    from ..engine.material_map_models import check_available

    try:
        check_available(request, options)
    except EngineError as error:
        raise ValueError(str(error)) from None


HEIGHT_REFUSED = ("Height maps are made for flat textures only (targets Image and Material): a {target} "
                  "texture's height would be integrated per view and disagree where views meet. Turn Height off")
