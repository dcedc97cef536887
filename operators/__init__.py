"""Operators, one per module; this package owns their registration."""

import bpy

from .add_model_folder import LATENT_TEXTURES_OT_add_model_folder
from .browse_model import LATENT_TEXTURES_OT_browse_model
from .cancel import LATENT_TEXTURES_OT_cancel
from .cancel_dependency_install import LATENT_TEXTURES_OT_cancel_dependency_install
from .cancel_model_download import LATENT_TEXTURES_OT_cancel_model_download
from .compare import LATENT_TEXTURES_OT_compare
from .download_model import LATENT_TEXTURES_OT_download_model
from .free_model import LATENT_TEXTURES_OT_free_model
from .generate import LATENT_TEXTURES_OT_generate
from .install_dependencies import LATENT_TEXTURES_OT_install_dependencies
from .lora_add import LATENT_TEXTURES_OT_lora_add
from .lora_remove import LATENT_TEXTURES_OT_lora_remove
from .material_maps import LATENT_TEXTURES_OT_material_maps
from .open_model_cache import LATENT_TEXTURES_OT_open_model_cache
from .pick_model import LATENT_TEXTURES_OT_pick_model
from .refresh_dependency_status import LATENT_TEXTURES_OT_refresh_dependency_status
from .remove_cached_model import LATENT_TEXTURES_OT_remove_cached_model
from .remove_model_folder import LATENT_TEXTURES_OT_remove_model_folder
from .scan_models import LATENT_TEXTURES_OT_scan_models
from .upscale import LATENT_TEXTURES_OT_upscale
from .use_image_settings import LATENT_TEXTURES_OT_use_image_settings
from .use_recommended_settings import LATENT_TEXTURES_OT_use_recommended_settings

classes = (
    LATENT_TEXTURES_OT_generate,
    LATENT_TEXTURES_OT_upscale,
    LATENT_TEXTURES_OT_material_maps,
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
    LATENT_TEXTURES_OT_lora_add,
    LATENT_TEXTURES_OT_lora_remove,
    LATENT_TEXTURES_OT_compare,
    LATENT_TEXTURES_OT_scan_models,
    LATENT_TEXTURES_OT_add_model_folder,
    LATENT_TEXTURES_OT_remove_model_folder,
    LATENT_TEXTURES_OT_pick_model,
    LATENT_TEXTURES_OT_use_recommended_settings,
    LATENT_TEXTURES_OT_use_image_settings,
)

register, _unregister_classes = bpy.utils.register_classes_factory(classes)


def unregister() -> None:
    """A generation still running is cancelled first: its worker must not outlive the add-on's operators."""
    import sys

    run_module = sys.modules.get(f"{__package__.rpartition('.')[0]}.bridge.run")
    if run_module is not None:  # never imported: nothing ever ran
        run_module.shutdown()
    _unregister_classes()
