"""Blender's camera and evaluated scene -> the bpy-free ``geometry`` package (main thread only).

Depth and normal images come from a numpy z-buffer of the evaluated scene's triangles
(``geometry.rasterize``): the same headless and in the UI, no render settings touched, in
exactly the frame of the ``CAMERA`` capture and the ``PROJECT`` UVs (``view_camera``).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import control as control_images
from ..geometry import SurfaceHits, ViewCamera, rasterize, view_normals

# Object types whose evaluated geometry Blender can turn into a mesh (and renders as surfaces).
_SURFACE_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}
CONTROLS = ("DEPTH", "NORMAL")


def view_camera(scene: bpy.types.Scene, camera: bpy.types.Object, width: int, height: int,
                depsgraph: bpy.types.Depsgraph) -> ViewCamera:
    """``camera`` framed for a width x height image exactly as a render of ``scene`` frames it."""
    if camera is None:
        raise ValueError("The scene has no camera: add one and make it the scene camera")
    projection = camera.calc_matrix_camera(
        depsgraph, x=width, y=height,
        scale_x=scene.render.pixel_aspect_x, scale_y=scene.render.pixel_aspect_y,
    )
    return ViewCamera(
        world_matrix=np.array(camera.matrix_world, dtype=np.float64),
        projection=np.array(projection, dtype=np.float64),
        width=width, height=height,
        ortho=camera.type == "CAMERA" and camera.data.type == "ORTHO",
    )


@dataclass(frozen=True)
class SceneTriangles:
    """Every rendered triangle of the evaluated scene in world space."""

    corners: np.ndarray  # (n, 3, 3) float64
    corner_normals: np.ndarray  # (n, 3, 3) float64 shading normals (smooth, flat, custom) per corner


def scene_triangles(depsgraph: bpy.types.Depsgraph) -> SceneTriangles:
    """The evaluated scene's triangles as a render sees them: modifiers, armatures and instances
    applied; objects hidden from renders (or from the camera's rays) left out; objects only
    hidden in the viewport (eye icon) kept, as a render keeps them.

    Objects *disabled* in viewports (monitor icon) are not evaluated by the viewport's
    depsgraph and are left out.
    """
    corners: list[np.ndarray] = []
    normals: list[np.ndarray] = []
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(obj: bpy.types.Object, matrix_world) -> None:
        local = cache.get(obj.name)
        if local is None:
            local = cache[obj.name] = _local_triangles(obj)
        if not len(local[0]):
            return
        matrix = np.array(matrix_world, dtype=np.float64)
        linear = matrix[:3, :3]
        corners.append(local[0] @ linear.T + matrix[:3, 3])
        # Normals move by the inverse transpose (non-uniform scale); normalised where they are used.
        normals.append(local[1] @ np.linalg.inv(linear))

    for instance in depsgraph.object_instances:
        if instance.object.type in _SURFACE_TYPES and _renders(instance):
            add(instance.object, instance.matrix_world)
    view_layer = depsgraph.view_layer
    for obj in view_layer.objects:
        if obj.type in _SURFACE_TYPES and not obj.visible_get(view_layer=view_layer) and _renders_object(obj):
            evaluated = obj.evaluated_get(depsgraph)
            if evaluated != obj:  # the original back means the viewport does not evaluate it
                add(evaluated, evaluated.matrix_world)
    if not corners:
        empty = np.empty((0, 3, 3))
        return SceneTriangles(empty, empty)
    return SceneTriangles(np.concatenate(corners), np.concatenate(normals))


def _renders(instance: bpy.types.DepsgraphObjectInstance) -> bool:
    """Whether a render shows this depsgraph instance to the camera."""
    if instance.is_instance:
        # Instanced geometry renders even when its source object or collection is hidden (the usual setup).
        parent = instance.parent
        return parent is None or not parent.original.hide_render
    obj = instance.object
    return _renders_object(obj.original) and not (obj.is_instancer and not obj.show_instancer_for_render)


def _renders_object(obj: bpy.types.Object) -> bool:
    if obj.hide_render or not getattr(obj, "visible_camera", True):
        return False
    collections = obj.users_collection
    return not collections or not all(getattr(c, "hide_render", False) for c in collections)


def _local_triangles(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """(corners, corner shading normals) of an evaluated object's mesh, in object space."""
    mesh = obj.to_mesh()
    try:
        if mesh is None:
            return np.empty((0, 3, 3)), np.empty((0, 3, 3))
        corners, normals, _ = mesh_triangles(mesh)
        return corners, normals
    finally:
        obj.to_mesh_clear()


def mesh_triangles(mesh: bpy.types.Mesh, uv_name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(corners, corner shading normals, UVs of ``uv_name`` or None), (T, 3, 3|3|2) float64, of ``mesh``'s
    triangles in object space: shading normals as the mesh says (smooth, flat, sharp edges, custom).

    Read through the attribute arrays (``foreach_get`` on ``position``, ``.corner_vert``, the UV map's
    vectors, ``corner_normals``): a 63k-triangle mesh in a few ms, where the per-triangle properties
    (``loop_triangles`` ``vertices`` / ``split_normals``) took about ten times longer.
    """
    mesh.calc_loop_triangles()
    count = len(mesh.loop_triangles)
    loops = np.empty(count * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    positions = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.attributes["position"].data.foreach_get("vector", positions)
    corner_vertex = np.empty(len(mesh.loops), dtype=np.int32)
    corner_verts = mesh.attributes.get(".corner_vert")
    if corner_verts is not None:
        corner_verts.data.foreach_get("value", corner_vertex)
    else:
        mesh.loops.foreach_get("vertex_index", corner_vertex)
    corner_normals = np.empty(len(mesh.loops) * 3, dtype=np.float32)
    mesh.corner_normals.foreach_get("vector", corner_normals)
    uv = None
    if uv_name is not None:
        corner_uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
        mesh.attributes[uv_name].data.foreach_get("vector", corner_uv)
        uv = corner_uv.reshape(-1, 2).astype(np.float64)[loops].reshape(count, 3, 2)
    corners = positions.reshape(-1, 3).astype(np.float64)[corner_vertex[loops]].reshape(count, 3, 3)
    normals = corner_normals.reshape(-1, 3).astype(np.float64)[loops].reshape(count, 3, 3)
    return corners, normals, uv


@dataclass(frozen=True)
class GeometryPasses:
    """Depth and normals of the scene as one camera sees it (top row first)."""

    camera: ViewCamera
    hits: SurfaceHits
    normals: np.ndarray  # (height, width, 3) camera space, x right, y up, z towards the viewer; 0 = background

    @property
    def depth(self) -> np.ndarray:
        """(height, width) view depth, +inf where nothing is seen."""
        return self.hits.depth


def geometry_passes(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph, width: int, height: int,
                    camera: bpy.types.Object | None = None) -> GeometryPasses:
    """Depth and shading normals of the evaluated scene seen by ``camera`` (default: the scene camera)."""
    view = view_camera(scene, camera if camera is not None else scene.camera, width, height, depsgraph)
    triangles = scene_triangles(depsgraph)
    hits = rasterize(view, triangles.corners)
    return GeometryPasses(view, hits, view_normals(view, triangles.corners, hits, triangles.corner_normals))


def control_image(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph, control: str, width: int, height: int,
                  camera: bpy.types.Object | None = None) -> np.ndarray:
    """The ``control`` (DEPTH / NORMAL) image the engine conditions on: (height, width, 3) float32, top row first."""
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}; got {control!r}")
    passes = geometry_passes(scene, depsgraph, width, height, camera)
    if control == "DEPTH":
        return control_images.encode_depth(passes.depth, passes.hits.covered)
    return control_images.encode_normals(passes.normals, passes.hits.covered)
