"""Operators, one per module; this package owns their registration."""

import bpy

from .browse_model import LATENT_TEXTURES_OT_browse_model
from .cancel import LATENT_TEXTURES_OT_cancel
from .cancel_dependency_install import LATENT_TEXTURES_OT_cancel_dependency_install
from .cancel_model_download import LATENT_TEXTURES_OT_cancel_model_download
from .download_model import LATENT_TEXTURES_OT_download_model
from .free_model import LATENT_TEXTURES_OT_free_model
from .generate import LATENT_TEXTURES_OT_generate
from .install_dependencies import LATENT_TEXTURES_OT_install_dependencies
from .open_model_cache import LATENT_TEXTURES_OT_open_model_cache
from .refresh_dependency_status import LATENT_TEXTURES_OT_refresh_dependency_status
from .remove_cached_model import LATENT_TEXTURES_OT_remove_cached_model
from .use_image_settings import LATENT_TEXTURES_OT_use_image_settings
from .use_recommended_settings import LATENT_TEXTURES_OT_use_recommended_settings

classes = (
    LATENT_TEXTURES_OT_generate,
    LATENT_TEXTURES_OT_cancel,
    LATENT_TEXTURES_OT_free_model,
    LATENT_TEXTURES_OT_browse_model,
    LATENT_TEXTURES_OT_install_dependencies,
    LATENT_TEXTURES_OT_cancel_dependency_install,
    LATENT_TEXTURES_OT_refresh_dependency_status,
    LATENT_TEXTURES_OT_download_model,
    LATENT_TEXTURES_OT_cancel_model_download,
    LATENT_TEXTURES_OT_open_model_cache,
    LATENT_TEXTURES_OT_remove_cached_model,
    LATENT_TEXTURES_OT_use_recommended_settings,
    LATENT_TEXTURES_OT_use_image_settings,
)

register, unregister = bpy.utils.register_classes_factory(classes)
