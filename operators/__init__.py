"""Operators, one per module; this package owns their registration."""

import bpy

from .cancel import LATENT_TEXTURES_OT_cancel
from .free_model import LATENT_TEXTURES_OT_free_model
from .generate import LATENT_TEXTURES_OT_generate

classes = (
    LATENT_TEXTURES_OT_generate,
    LATENT_TEXTURES_OT_cancel,
    LATENT_TEXTURES_OT_free_model,
)

register, unregister = bpy.utils.register_classes_factory(classes)
