"""``target = 'PROJECT'``: the result projected from the scene camera onto the selected meshes, through a UV
map (``results.apply_projection``) computed from the camera as it was when the run started."""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from . import capture as captures
from ..geometry import ViewCamera
from . import geometry, pbr_maps_writer, projection, results, view_inputs
from .image_target import ImageRun
from .plan import Plan, Target, find_object, object_identity


@dataclass
class ProjectionCapture:
    """The camera projection as it was at the start: what the artist moves or deletes meanwhile does not matter."""

    view: np.ndarray
    projection: np.ndarray
    uv_name: str
    uvs: dict[int, np.ndarray] = field(default_factory=dict)  # object identity -> per-loop UVs
    ortho: bool = False


def camera_recipe(captured: ProjectionCapture) -> dict:
    """The projection's camera in the result's recipe (``projection_camera``): material maps put a normal map
    in the tangent space of the surface each pixel shows from it (``bridge/material_maps.py``)."""
    return {"world_matrix": np.linalg.inv(captured.view).tolist(), "projection": captured.projection.tolist(),
            "ortho": captured.ortho}


class ProjectRun(ImageRun):
    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        image = super().create_image(changes, result)
        if self.plan.target_capture is not None:
            image[results.RECIPE_PROPERTY]["projection_camera"] = camera_recipe(self.plan.target_capture)
        return image

    def write_objects(self, changes: results.Changes, objects: list[bpy.types.Object],
                      image: bpy.types.Image) -> list[str]:
        if not objects:
            return []
        captured = self.plan.target_capture
        pairs = [(obj, captured.uvs[object_identity(obj)]) for obj in objects]
        return results.apply_projection(changes, pairs, image, captured.uv_name, self.plan.keep_history)

    def write_material_maps(self, context: bpy.types.Context, image: bpy.types.Image) -> list[tuple[str, str]]:
        """The maps with the normal map in the tangent space of the projection UV map, surface by surface."""
        captured = self.plan.target_capture
        if captured is None or self.job.maps_result is None:
            return super().write_material_maps(context, image)
        objects = [obj for name, identity in zip(self.plan.object_names, self.plan.object_ids)
                   if (obj := find_object(name, identity)) is not None]
        camera = ViewCamera(np.linalg.inv(captured.view), captured.projection, image.size[0], image.size[1],
                            captured.ortho)
        return pbr_maps_writer.write_after_generate(context, image, self.job.maps_result, self.plan.keep_history,
                                                    projection=(objects, captured.uv_name, camera))

    def release_arrays(self) -> None:
        super().release_arrays()
        if self.plan.target_capture is not None:
            self.plan.target_capture.uvs.clear()


def target_objects(context: bpy.types.Context) -> list[str]:
    if context.scene.camera is None:
        raise ValueError("Target is Project from Camera but the scene has no camera: add one")
    objects = [o for o in context.selected_objects if o.type == "MESH"]
    if not objects:
        raise ValueError("Target is Project from Camera but no mesh object is selected")
    return [o.name for o in objects]


def capture(context: bpy.types.Context, settings, plan: Plan, objects: list[bpy.types.Object]) -> None:
    """The view's images, and (when there are objects to project onto) the projection, before the source is
    rendered: a refused projection costs no render."""
    view_inputs.check(context, settings, plan)
    if objects:  # none: a comparison grid, which only becomes an image
        if (settings.mode in ("IMG2IMG", "INPAINT") and settings.source == "VIEWPORT"
                and view_inputs.will_capture_viewport(context)):
            problem = captures.viewport_projection_problem(captures.viewport_area(context), context.scene)
            if problem:
                raise ValueError(problem)
        plan.target_capture = capture_projection(context, objects, plan.request.width, plan.request.height,
                                                 plan.keep_history)
    view_inputs.read(context, settings, plan)


def capture_projection(context: bpy.types.Context, objects: list[bpy.types.Object], width: int, height: int,
                       keep_history: bool) -> ProjectionCapture:
    """The scene camera's matrices at this frame and every object's projected UVs, before the engine runs."""
    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    camera = geometry.view_camera(scene, scene.camera, width, height, depsgraph)
    uv_name = projection.projection_uv_name([obj.data for obj in objects], keep_history)
    for obj in objects:
        if obj.data.uv_layers.get(uv_name) is None and len(obj.data.uv_layers) >= projection.MAX_UV_MAPS:
            raise ValueError(
                f"'{obj.name}' already has {projection.MAX_UV_MAPS} UV maps (Blender's limit) and the projection "
                f"needs a new one ('{uv_name}'): delete a UV map (Object Data > UV Maps) or turn off Keep History"
            )
    captured = ProjectionCapture(np.linalg.inv(camera.world_matrix), camera.projection, uv_name,
                                 ortho=camera.ortho)
    for obj in objects:
        captured.uvs[object_identity(obj)] = camera.uv(projection.loop_world_positions(obj, depsgraph))
    return captured


TARGET = Target(objects=target_objects, capture=capture, start=ProjectRun)
