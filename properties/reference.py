"""Reference image: an image prompt (IP-Adapter) beside the text prompt, for a style or one look over every view."""

import bpy


class ReferenceSettings:
    """The Reference section."""

    reference_image: bpy.props.PointerProperty(
        name="Reference Image", type=bpy.types.Image,
        description="Paint in the look of this picture (a photo, a concept painting, a neighbouring texture): "
                    "an image prompt beside the text prompt (IP-Adapter); empty = off",
    )
    reference_strength: bpy.props.FloatProperty(
        name="Reference Strength",
        description="How strongly the reference image steers the result (0 = not at all, 1 = as much as the "
                    "adapter can)",
        default=0.6, min=0.0, max=1.0, subtype="FACTOR",
    )
    reference_model: bpy.props.StringProperty(
        name="Reference Model",
        description="The IP-Adapter: a .safetensors file, a folder or repo_id/subfolder/weight_name; empty = the "
                    "default for the model's family (h94/IP-Adapter)",
        default="",
    )
    reference_first_view: bpy.props.BoolProperty(
        name="View 1 as Reference",
        description="Whole Object, Method Sequential, with no Reference Image: view 1's result is the reference "
                    "of every later view, so they keep its look (needs the IP-Adapter and its image encoder on "
                    "disk)",
        default=False,
    )
