"""Panels: drawing only. This package owns their registration."""

import bpy

from . import image_editor, view3d

classes = view3d.classes + image_editor.classes

register, unregister = bpy.utils.register_classes_factory(classes)
