"""Scene settings: ``bpy.types.Scene.latent_textures`` (names fixed by the contract).

One flat PropertyGroup: scripts, the CLI and saved .blend files read ``scene.latent_textures.<name>``.
Its properties are declared per panel section, each in an annotation-only mixin of the module beside
it, and combined here. Blender registers the annotations of a PropertyGroup's plain (non-bpy) bases,
the last base first, on 4.2 and 5.0 alike; the bases are listed last section first so the properties
come in the panel's order.
"""

import bpy

from .control import ControlSettings
from .image import ImageSettings
from .insight import InsightSettings
from .loras import LatentTexturesLora, LoraSettings
from .material_maps import MaterialMapsSettings
from .model import ModelSettings
from .prompt import PromptSettings
from .reference import ReferenceSettings
from .sampling import SamplingSettings
from .upscale import UpscaleSettings
from .whole_object import WholeObjectSettings


class LatentTexturesSettings(
    InsightSettings,
    MaterialMapsSettings,
    UpscaleSettings,
    ReferenceSettings,
    LoraSettings,
    ControlSettings,
    ModelSettings,
    SamplingSettings,
    WholeObjectSettings,
    ImageSettings,
    PromptSettings,
    bpy.types.PropertyGroup,
):
    """Every scene setting of the add-on, under their contract names."""


classes = (LatentTexturesLora, LatentTexturesSettings)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.latent_textures = bpy.props.PointerProperty(type=LatentTexturesSettings)


def unregister() -> None:
    del bpy.types.Scene.latent_textures
    _unregister_classes()
