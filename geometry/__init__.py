"""Scene geometry as seen by a camera: pure numpy, never bpy, never torch.

The bpy side (reading the evaluated scene and the camera) is ``bridge/geometry.py``;
everything here is testable without Blender, like ``engine/``.
"""

from .camera import ViewCamera
from .normals import view_normals
from .raster import SurfaceHits, rasterize

__all__ = ["SurfaceHits", "ViewCamera", "rasterize", "view_normals"]
