"""The bpy side of baking views into an object's own UV map (issue 11; the math is ``geometry/``).

Reads the evaluated objects on the main thread (modifiers, armatures applied) and the
cameras; creates nothing in ``bpy.data`` (auto-placed views are numpy cameras, never
camera objects), so nothing needs cleaning up.

How the pieces fit (what the ``OBJECT`` target calls, main thread unless said)::

    depsgraph = context.evaluated_depsgraph_get()
    views = auto_views(objects, depsgraph, count, width, height)         # ViewSettings; recipe: v.recipe()
    cameras = [view.camera() for view in views]                         # or collection_views(...) + camera_recipe
    passes = view_passes(cameras, depsgraph, settings.control)          # depth + control image per view
    # GRID: geometry.grid.tile([p.control_image ...]) -> one generation -> geometry.grid.untile(result, n)
    # SEQUENTIAL: per view k, geometry.sequential.render_texture / repaint_mask -> INPAINT
    baked = bake_objects(objects, depsgraph, passes, images, texture_size)   # one BakedMesh per mesh
    image = new_display_image(name, baked[0].texture)                   # bridge/pixels.py

Each step has a bpy-free half for the worker, so the main thread only copies data out of Blender
(issue 23: a 63k-triangle mesh's capture froze the UI for seconds): ``mesh_surfaces`` (main: the
triangles, ``foreach_get``) then ``MeshSurfaces.texels``; ``scene_triangles`` (main) then
``passes_of``; the objects' triangles then ``place_auto_views``; ``bake_views`` / ``bake_mesh``
(``bridge/object_target.py``'s ``ObjectCapture.prepare`` and ``ObjectJob`` do this).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import control as control_images
from ..geometry import ViewCamera, rasterize, view_normals
from ..geometry.bake import BakeSettings, BakeView, GatheredTexels, finish_texture, gather_views, merge_gathered
from ..geometry.uv_raster import SurfaceTexels, rasterize_uv_triangles
from ..geometry.uv_tiles import UVTileError
from ..geometry.views import ViewSettings, bounding_sphere, outward_normals, place_views
from .geometry import CONTROLS, SceneTriangles, mesh_triangles, scene_triangles, view_camera


def render_uv_layer(obj: bpy.types.Object) -> bpy.types.MeshUVLoopLayer:
    """The UV map a render uses (the camera icon in the UV Maps list); a clear error when there is none."""
    mesh = obj.data if obj is not None else None
    if obj is None or obj.type != "MESH":
        raise ValueError(f"'{getattr(obj, 'name', obj)}' is not a mesh object: only meshes have UV maps to bake into")
    layers = mesh.uv_layers
    if len(layers) == 0:
        raise ValueError(f"Mesh object '{obj.name}' has no UV map: unwrap it first (UV > Unwrap in Edit Mode)")
    for layer in layers:
        if layer.active_render:
            return layer
    return layers.active or layers[0]


def object_triangles(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph,
                     uv_name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uv, positions, normals), each (T, 3, 2|3|3), of the evaluated object's triangles in world space:
    the UVs of the UV map ``uv_name`` (default: the render UV map), the shading normals per corner
    (smooth, flat, sharp edges and custom normals as the mesh says)."""
    uv, positions, normals = _evaluated_triangles(obj, depsgraph, uv_name or render_uv_layer(obj).name)
    return uv, positions, normals


def _evaluated_triangles(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph,
                         uv_name: str | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(uv or None without ``uv_name``, positions, normals) of the evaluated mesh's triangles, world space."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if uv_name and mesh.uv_layers.get(uv_name) is None:
            raise ValueError(f"The modifiers of '{obj.name}' drop its UV map '{uv_name}': nothing to bake into")
        corners, normals, uv = mesh_triangles(mesh, uv_name or None)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    count = len(corners)
    positions = corners.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    # Normals move by the inverse transpose (non-uniform scale); the rasteriser normalises them.
    world_normals = normals.reshape(-1, 3) @ np.linalg.inv(matrix[:3, :3])
    return uv, positions.reshape(count, 3, 3), world_normals.reshape(count, 3, 3)


def object_texels(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, size: int,
                  uv_name: str | None = None) -> SurfaceTexels:
    """Every covered texel of a ``size``^2 texture in the object's render UV map: world position and normal."""
    uv, positions, normals = object_triangles(obj, depsgraph, uv_name)
    try:
        return rasterize_uv_triangles(uv, positions, normals, size)
    except UVTileError as error:  # UDIM: refused before anything is created
        raise ValueError(f"Mesh object '{obj.name}': {error}") from error


def auto_views(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, count: int, width: int,
               height: int, *, ortho: bool = False, lens: float = 50.0, margin: float = 0.1) -> list[ViewSettings]:
    """``count`` views around the objects' bounding sphere, front first, then by the surface each sees first
    (``geometry.views.place_views``); numpy cameras only, nothing is added to the scene."""
    positions = [_evaluated_triangles(obj, depsgraph, None)[1] for obj in objects]
    return place_auto_views(positions, count, width, height, ortho=ortho, lens=lens, margin=margin)


def place_auto_views(objects_positions: list[np.ndarray], count: int, width: int, height: int, *,
                     ortho: bool = False, lens: float = 50.0, margin: float = 0.1) -> list[ViewSettings]:
    """``auto_views`` from each object's world triangles ((T, 3, 3), in selection order): numpy only, so it
    runs on the worker."""
    corners, normals, areas = [], [], []
    for positions in objects_positions:
        cross = np.cross(positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0])
        area = np.linalg.norm(cross, axis=1)
        corners.append(positions.reshape(-1, 3))
        # faces are two-sided in the bake: a mesh with flipped normals is placed for as if they were not
        own_centre, _ = bounding_sphere(positions.reshape(-1, 3)) if len(positions) else (np.zeros(3), 0.0)
        normals.append(outward_normals(cross / np.maximum(area, 1e-20)[:, None], positions.mean(axis=1), own_centre,
                                       area))
        areas.append(area)
    if not corners or not sum(len(c) for c in corners):
        raise ValueError("The selected objects have no surface to place views around")
    centre, radius = bounding_sphere(np.concatenate(corners))
    return place_views(centre, radius, count, width, height, ortho=ortho, lens=lens, margin=margin,
                       normals=np.concatenate(normals), weights=np.concatenate(areas))


def collection_views(scene: bpy.types.Scene, collection: bpy.types.Collection, depsgraph: bpy.types.Depsgraph,
                     width: int, height: int) -> list[ViewCamera]:
    """The cameras of ``collection`` (and its children), in name order, framed for width x height."""
    cameras = sorted((obj for obj in collection.all_objects if obj.type == "CAMERA"), key=lambda obj: obj.name)
    if not cameras:
        raise ValueError(f"Collection '{collection.name}' holds no cameras: add cameras to it or clear View Collection")
    return [view_camera(scene, camera, width, height, depsgraph) for camera in cameras]


def camera_recipe(camera: bpy.types.Object, width: int, height: int) -> dict:
    """The recipe's ``views`` entry for a camera object (the same keys as ``ViewSettings.recipe``)."""
    data = camera.data
    return {
        "matrix_world": [[float(v) for v in row] for row in camera.matrix_world],
        "projection": "ORTHO" if data.type == "ORTHO" else "PERSP",
        "lens": float(data.lens),
        "ortho_scale": float(data.ortho_scale),
        "sensor_width": float(data.sensor_width),
        "sensor_fit": data.sensor_fit,
        "clip_start": float(data.clip_start),
        "clip_end": float(data.clip_end),
        "width": int(width),
        "height": int(height),
    }


def view_depths(cameras: list[ViewCamera], depsgraph: bpy.types.Depsgraph) -> list[np.ndarray]:
    """Each camera's view depth of the whole evaluated scene ((h, w) float32, inf = background): every
    object occludes, not only the ones being textured."""
    triangles = scene_triangles(depsgraph).corners
    return [rasterize(camera, triangles).depth for camera in cameras]


@dataclass
class ViewPasses:
    """One view's geometry: its camera, the scene's depth (inf = background) and the control image
    (None without control), both top row first."""

    camera: ViewCamera
    depth: np.ndarray
    control_image: np.ndarray | None


def view_passes(cameras: list[ViewCamera], depsgraph: bpy.types.Depsgraph, control: str = "NONE") -> list[ViewPasses]:
    """Depth and the ``control`` (DEPTH / NORMAL / NONE) image of the evaluated scene for each camera,
    reading the scene once (the same images ``bridge.geometry.control_image`` makes for the scene camera)."""
    check_control(control)
    return passes_of(cameras, scene_triangles(depsgraph), control)


def check_control(control: str) -> None:
    if control != "NONE" and control not in CONTROLS:
        raise ValueError(f"control must be NONE or one of {CONTROLS}; got {control!r}")


def passes_of(cameras: list[ViewCamera], triangles: SceneTriangles, control: str = "NONE") -> list[ViewPasses]:
    """``view_passes`` from the scene's triangles read before (``scene_triangles``): numpy only, so it runs on the
    worker."""
    passes = []
    for camera in cameras:
        hits = rasterize(camera, triangles.corners)
        image = None
        if control == "DEPTH":
            image = control_images.encode_depth(hits.depth, hits.covered)
        elif control == "NORMAL":
            normals = view_normals(camera, triangles.corners, hits, triangles.corner_normals)
            image = control_images.encode_normals(normals, hits.covered)
        passes.append(ViewPasses(camera, hits.depth, image))
    return passes


@dataclass
class BakedMesh:
    """The texture of one mesh datablock (every selected object using it shares it)."""

    mesh_name: str
    uv_name: str
    object_names: list[str]
    texture: np.ndarray  # (size, size, C) top row first
    gathered: GatheredTexels
    shared_texels: int  # texels inside two UV triangles (overlapping / mirrored islands)
    png: bytes | None = None  # the texture encoded (``pixels.encode_png``, on the worker): packed as it is


@dataclass
class MeshTexels:
    """One mesh datablock's texels, read on the main thread: one ``SurfaceTexels`` per object using it
    (each where it stands); everything ``bake_mesh`` needs, numpy only."""

    mesh_name: str
    uv_name: str
    object_names: list[str]
    texels: list[SurfaceTexels]


@dataclass
class MeshSurfaces:
    """One mesh datablock as read on the main thread (``mesh_surfaces``): the (uv, positions, normals) world
    triangles of each object using it; ``texels`` (numpy only) runs on the worker."""

    mesh_name: str
    uv_name: str
    object_names: list[str]
    triangles: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    def texels(self, size: int) -> MeshTexels:
        """Every covered texel of a ``size``^2 texture, per object (``geometry.uv_raster``)."""
        texels = []
        for name, (uv, positions, normals) in zip(self.object_names, self.triangles):
            try:
                texels.append(rasterize_uv_triangles(uv, positions, normals, size))
            except UVTileError as error:  # UDIM: refused before anything is generated or created
                raise ValueError(f"Mesh object '{name}': {error}") from error
        return MeshTexels(self.mesh_name, self.uv_name, list(self.object_names), texels)


def mesh_surfaces(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> list[MeshSurfaces]:
    """The triangles of every mesh of ``objects`` (objects sharing one mesh are grouped: one texture), read in
    one pass (``foreach_get``). Raises ValueError (naming the object) for a mesh without a UV map or instances
    whose modifiers change the UVs differently, before any work (UVs over several UDIM tiles: ``texels``)."""
    groups: dict[str, list[bpy.types.Object]] = {}
    for obj in objects:
        render_uv_layer(obj)  # refuse a mesh without UVs before reading anything
        groups.setdefault(obj.data.name, []).append(obj)
    meshes = []
    for mesh_name, instances in groups.items():
        uv_name = render_uv_layer(instances[0]).name
        triangles = [object_triangles(obj, depsgraph, uv_name) for obj in instances]
        first_uv = triangles[0][0]
        if any(uv.shape != first_uv.shape or not np.array_equal(uv, first_uv) for uv, _, _ in triangles):
            raise ValueError(f"The objects using mesh '{mesh_name}' have modifiers that change it differently: "
                             "bake them one at a time")
        meshes.append(MeshSurfaces(mesh_name, uv_name, [obj.name for obj in instances], triangles))
    return meshes


def mesh_texels(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, size: int) -> list[MeshTexels]:
    """The texels of every mesh of ``objects`` (``mesh_surfaces``, then ``MeshSurfaces.texels``), all here."""
    return [mesh.texels(size) for mesh in mesh_surfaces(objects, depsgraph)]


def bake_views(passes: list[ViewPasses], images: list[np.ndarray]) -> list[BakeView]:
    """The views to bake: each entry of ``passes`` with its image (top row first)."""
    if len(images) != len(passes):
        raise ValueError(f"images must hold one image per view ({len(passes)}), got {len(images)}")
    return [BakeView(view.camera, np.asarray(image, dtype=np.float32), view.depth)
            for view, image in zip(passes, images)]


def bake_mesh(mesh: MeshTexels, views: list[BakeView], settings: BakeSettings = BakeSettings(),
              allow_unseen: bool = False) -> BakedMesh:
    """One mesh's texture from the views (numpy only: runs on a worker thread). A mesh no view sees is a
    ValueError, unless ``allow_unseen`` (a texture baked so far: then all zero)."""
    gathered = merge_gathered([gather_views(t, views, settings) for t in mesh.texels])
    first = mesh.texels[0]
    if allow_unseen and not gathered.seen.any():
        texture = np.zeros((first.size, first.size, gathered.colour.shape[1]), dtype=np.float32)
    else:
        texture = finish_texture(first, gathered)
    return BakedMesh(mesh.mesh_name, mesh.uv_name, list(mesh.object_names), texture, gathered, first.shared)


def bake_objects(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, passes: list[ViewPasses],
                 images: list[np.ndarray], size: int, settings: BakeSettings = BakeSettings()) -> list[BakedMesh]:
    """Bake the views' ``images`` (top row first, one per entry of ``passes``) into each mesh's render UV map.

    Objects sharing one mesh get one texture: each instance is gathered where it stands and the
    gathers are pooled. Raises ValueError (naming the object) for a mesh without a UV map, before any work.
    """
    views = bake_views(passes, images)
    return [bake_mesh(mesh, views, settings) for mesh in mesh_texels(objects, depsgraph, size)]
