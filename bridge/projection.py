"""Camera projection of mesh loops into UV space (numpy over all loops at once)."""

import bpy
import numpy as np

PROJECTION_UV_NAME = "Latent Textures Projection"
MAX_UV_MAPS = 8  # Blender's limit per mesh


def projection_uv_name(meshes: list[bpy.types.Mesh], keep_history: bool) -> str:
    """The UV map a projection writes: always ``PROJECTION_UV_NAME`` (overwritten, like its image);
    with history, the first of ``PROJECTION_UV_NAME``, ``... 2``, ``... 3`` that no target mesh has yet."""
    if not keep_history:
        return PROJECTION_UV_NAME
    number = 1
    while True:
        name = PROJECTION_UV_NAME if number == 1 else f"{PROJECTION_UV_NAME} {number}"
        if all(mesh.uv_layers.get(name) is None for mesh in meshes):
            return name
        number += 1


def project_to_uv(points_world: np.ndarray, view_matrix: np.ndarray, projection_matrix: np.ndarray) -> np.ndarray:
    """(N, 3) world positions -> (N, 2) UVs where the camera frame is the 0..1 square.

    Works for perspective and orthographic projection matrices alike (the
    perspective divide is by w, which is 1 for orthographic cameras).
    """
    homogeneous = np.empty((len(points_world), 4), dtype=np.float64)
    homogeneous[:, :3] = points_world
    homogeneous[:, 3] = 1.0
    clip = homogeneous @ (projection_matrix @ view_matrix).T
    w = clip[:, 3:4]
    # Points on the camera plane have no projection; keep them finite.
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    ndc = clip[:, :2] / w
    return ((ndc + 1.0) * 0.5).astype(np.float32)


def camera_matrices(scene: bpy.types.Scene, camera: bpy.types.Object, width: int, height: int,
                    depsgraph) -> tuple[np.ndarray, np.ndarray]:
    """The view and projection matrices of ``camera`` for a width x height frame."""
    projection = camera.calc_matrix_camera(
        depsgraph, x=width, y=height,
        scale_x=scene.render.pixel_aspect_x, scale_y=scene.render.pixel_aspect_y,
    )
    view = camera.matrix_world.inverted()
    return np.array(view, dtype=np.float64), np.array(projection, dtype=np.float64)


def loop_world_positions(obj: bpy.types.Object, depsgraph) -> np.ndarray:
    """World position of every loop of ``obj``'s mesh, (n_loops, 3).

    Uses the evaluated (deformed) positions when the modifiers keep the
    topology, so an armature-posed or displaced object is projected where it
    is rendered, not where its rest pose is.
    """
    mesh = obj.data
    positions = _vertex_positions(mesh)
    evaluated = obj.evaluated_get(depsgraph)
    evaluated_mesh = evaluated.to_mesh()
    try:
        if len(evaluated_mesh.vertices) == len(mesh.vertices) and len(evaluated_mesh.loops) == len(mesh.loops):
            positions = _vertex_positions(evaluated_mesh)
    finally:
        evaluated.to_mesh_clear()
    loop_vertices = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loop_vertices)
    local = positions[loop_vertices]
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _vertex_positions(mesh) -> np.ndarray:
    positions = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", positions)
    return positions.reshape(-1, 3).astype(np.float64)


def write_uv_layer(mesh: bpy.types.Mesh, uvs: np.ndarray, name: str = PROJECTION_UV_NAME) -> bpy.types.MeshUVLoopLayer:
    """Create or overwrite the UV layer ``name`` with per-loop ``uvs``."""
    layer = mesh.uv_layers.get(name) or mesh.uv_layers.new(name=name, do_init=False)
    if layer is None:
        raise RuntimeError(f"Mesh '{mesh.name}' cannot take another UV map (Blender allows 8)")
    layer.data.foreach_set("uv", np.ascontiguousarray(uvs, dtype=np.float32).ravel())
    mesh.update()
    return layer
