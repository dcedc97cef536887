"""The LoRAs applied to the model, each with its weight."""

import bpy

from ..engine.request import MAX_LORA_WEIGHT


class LatentTexturesLora(bpy.types.PropertyGroup):
    """One LoRA of ``LoraSettings.loras``."""

    source: bpy.props.StringProperty(
        name="LoRA", subtype="FILE_PATH",
        description="A LoRA .safetensors file, or a Hugging Face repo id (org/name)",
    )
    weight: bpy.props.FloatProperty(
        name="Weight", description="How strongly the LoRA applies (1 = as trained, negative = the opposite)",
        default=1.0, min=-MAX_LORA_WEIGHT, max=MAX_LORA_WEIGHT, soft_min=-1.0, soft_max=1.5,
    )
    enabled: bpy.props.BoolProperty(name="Enabled", description="Apply this LoRA", default=True)


class LoraSettings:
    """The LoRAs section: the list and its active row."""

    loras: bpy.props.CollectionProperty(type=LatentTexturesLora, name="LoRAs")
    lora_index: bpy.props.IntProperty(name="Active LoRA", default=0, min=0)
