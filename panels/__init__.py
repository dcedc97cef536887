"""Panels: drawing only. This package owns their registration."""

import bpy

from . import image_editor, lora_list, view3d

classes = lora_list.classes + view3d.classes + image_editor.classes

register, unregister = bpy.utils.register_classes_factory(classes)
