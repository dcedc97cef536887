"""The live preview is one reusable Image, resized as needed, and gone when the run ends."""

import bpy
import numpy as np

from harness import ADDON_MODULE


def preview_module():
    return __import__(f"{ADDON_MODULE}.bridge.preview", fromlist=["_"])


def test_preview_reuses_one_datablock():
    preview = preview_module()
    first = preview.show(bpy.context, np.zeros((8, 8, 3), dtype=np.float32))
    count = len(bpy.data.images)
    second = preview.show(bpy.context, np.ones((16, 12, 3), dtype=np.float32))
    assert second == first and len(bpy.data.images) == count
    assert tuple(second.size) == (12, 16)
    assert np.allclose(np.array(second.pixels[:]), 1.0)
    preview.remove(bpy.context)
    assert preview.PREVIEW_IMAGE_NAME not in bpy.data.images
