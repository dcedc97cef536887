"""Blender's MikkTSpace tangents of an evaluated mesh, per triangle corner (issue 30: normal maps of real geometry).

``Mesh.calc_tangents`` refuses n-gons ("Tangent space can only be computed for tris/quads"), so a mesh
with n-gons is copied with its n-gons only triangulated (bmesh, on a temporary mesh removed at once):
triangulating the quads too would move the tangents by 1-2 degrees against what Blender renders.
MikkTSpace welds the corners of one vertex with the same normal and UV, so every triangle corner of an
n-gon's fan carries that n-gon corner's tangent; it is looked up by (polygon, vertex). Nothing is left in
``bpy.data``.
"""

from __future__ import annotations

import bmesh
import bpy
import numpy as np

from ..geometry.tangent_normals import TangentFrames
from .geometry import mesh_triangles

_POLYGON_LAYER = "latent_textures_polygon"


def corner_tangents(mesh: bpy.types.Mesh, uv_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(tangent (L, 3), bitangent sign (L,)) per corner (loop) of ``mesh`` for the UV map ``uv_name``, object
    space; ``mesh`` itself is not changed (its n-gons are triangulated on a temporary copy)."""
    if mesh.uv_layers.get(uv_name) is None:
        raise ValueError(f"Mesh '{mesh.name}' has no UV map '{uv_name}' to compute tangents for")
    sizes = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    if not len(sizes) or sizes.max() <= 4:
        return _calc_tangents(mesh, uv_name)
    temporary = _ngons_triangulated(mesh)
    try:
        tangent, sign = _calc_tangents(temporary, uv_name)
        keys = _corner_keys(temporary, len(mesh.vertices),
                            polygon_of=_polygon_attribute(temporary))
    finally:
        bpy.data.meshes.remove(temporary)
    wanted = _corner_keys(mesh, len(mesh.vertices))
    order = np.argsort(keys, kind="stable")
    found = order[np.searchsorted(keys, wanted, sorter=order)]
    return tangent[found], sign[found]


def tangent_frames(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph,
                   uv_name: str) -> tuple[TangentFrames, np.ndarray]:
    """The evaluated object's triangles (world space, (T, 3, 3), in ``loop_triangles`` order as every other
    reader here) and their tangent frames for the UV map ``uv_name``."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if mesh.uv_layers.get(uv_name) is None:
            raise ValueError(f"'{obj.name}' has no UV map '{uv_name}' after its modifiers: no tangents for it")
        corners, normals, _ = mesh_triangles(mesh)
        loops = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("loops", loops)
        tangent, sign = corner_tangents(mesh, uv_name)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    count = len(corners)
    frames = TangentFrames(tangent[loops].reshape(count, 3, 3), sign[loops].reshape(count, 3), normals,
                           matrix[:3, :3])
    world = corners.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    return frames, world.reshape(count, 3, 3)


def joined_frames(parts: list[tuple[TangentFrames, np.ndarray]]) -> tuple[TangentFrames, np.ndarray]:
    """Several objects' (frames, world triangles) as one, each triangle keeping its own object's matrix."""
    if not parts:
        raise ValueError("parts must hold at least one object's frames")
    frames = TangentFrames(np.concatenate([f.tangent for f, _ in parts]), np.concatenate([f.sign for f, _ in parts]),
                           np.concatenate([f.normal for f, _ in parts]),
                           np.concatenate([f.linear for f, _ in parts]))
    return frames, np.concatenate([corners for _, corners in parts])


def _calc_tangents(mesh: bpy.types.Mesh, uv_name: str) -> tuple[np.ndarray, np.ndarray]:
    mesh.calc_tangents(uvmap=uv_name)
    try:
        tangent = np.empty(len(mesh.loops) * 3, dtype=np.float32)
        sign = np.empty(len(mesh.loops), dtype=np.float32)
        mesh.loops.foreach_get("tangent", tangent)
        mesh.loops.foreach_get("bitangent_sign", sign)
    finally:
        mesh.free_tangents()
    return tangent.reshape(-1, 3).astype(np.float64), sign.astype(np.float64)


def _ngons_triangulated(mesh: bpy.types.Mesh) -> bpy.types.Mesh:
    """A temporary copy of ``mesh`` with its n-gons (only) triangulated, each face remembering its polygon."""
    work = bmesh.new()
    try:
        work.from_mesh(mesh)
        layer = work.faces.layers.int.new(_POLYGON_LAYER)
        for face in work.faces:
            face[layer] = face.index
        ngons = [face for face in work.faces if len(face.verts) > 4]
        bmesh.ops.triangulate(work, faces=ngons, quad_method="BEAUTY", ngon_method="BEAUTY")
        temporary = bpy.data.meshes.new("latent_textures_tangents")
        try:
            work.to_mesh(temporary)
        except Exception:
            bpy.data.meshes.remove(temporary)
            raise
    finally:
        work.free()
    return temporary


def _polygon_attribute(mesh: bpy.types.Mesh) -> np.ndarray:
    values = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.attributes[_POLYGON_LAYER].data.foreach_get("value", values)
    return values


def _corner_keys(mesh: bpy.types.Mesh, vertex_count: int, polygon_of: np.ndarray | None = None) -> np.ndarray:
    """One int64 per corner: (the polygon it belongs to, mapped by ``polygon_of``) * vertices + its vertex."""
    starts = np.empty(len(mesh.polygons), dtype=np.int64)
    totals = np.empty(len(mesh.polygons), dtype=np.int64)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    offsets = np.cumsum(totals) - totals
    within = np.arange(int(totals.sum()), dtype=np.int64) - np.repeat(offsets, totals)
    polygon = np.empty(len(mesh.loops), dtype=np.int64)
    polygon[np.repeat(starts, totals) + within] = np.repeat(np.arange(len(starts), dtype=np.int64), totals)
    if polygon_of is not None:
        polygon = polygon_of[polygon].astype(np.int64)
    vertex = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", vertex)
    return polygon * vertex_count + vertex
