"""The model: a repo id, a diffusers folder or a single-file checkpoint."""

import bpy

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


class ModelSettings:
    """The Model section."""

    model: bpy.props.StringProperty(
        name="Model",
        description="A Hugging Face repo id, a local diffusers folder, or a single-file .safetensors checkpoint",
        default=DEFAULT_MODEL,
    )
