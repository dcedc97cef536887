"""Blender's camera and evaluated scene -> the bpy-free ``geometry`` package (main thread only)."""

from __future__ import annotations

import bpy
import numpy as np

from ..geometry import ViewCamera


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
