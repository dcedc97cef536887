"""Geometry conditioning: a ControlNet follows the scene's depth or normals."""

import bpy

from ..engine.request import MAX_CONTROL_STRENGTH

CONTROL_ITEMS = (
    ("NONE", "None", "No geometry conditioning"),
    ("DEPTH", "Depth", "Follow the scene's depth seen from the camera (ControlNet)"),
    ("NORMAL", "Normal", "Follow the scene's surface normals seen from the camera (ControlNet)"),
)


class ControlSettings:
    """The Control section."""

    control: bpy.props.EnumProperty(
        name="Control", description="Condition on the scene's geometry seen from the scene camera",
        items=CONTROL_ITEMS, default="NONE",
    )
    control_model: bpy.props.StringProperty(
        name="Control Model",
        description="The ControlNet: a Hugging Face repo id, a diffusers folder or a .safetensors file; "
                    "empty = the default for the control and the model's family",
        default="",
    )
    control_strength: bpy.props.FloatProperty(
        name="Control Strength", description="How strongly the geometry steers the image (0 = not at all)",
        default=1.0, min=0.0, max=MAX_CONTROL_STRENGTH, subtype="FACTOR",
    )
