"""The reference image (IP-Adapter) of a run, read from Blender before the engine runs, and its recipe entry.

The picture goes to the engine as display-referred sRGB (what the artist sees in the Image Editor), through the
same colour management as a source image (``pixels.read_display_pixels``). Its recipe entry names the image and
a hash of exactly those pixels, so "Use This Image's Settings" can tell the same picture from another one that
took its name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine.request import ReferenceSpec
from . import pixels

RECIPE_KEY = "reference"  # the recipe's dict: image, sha256, strength, model (+ what the engine adds)


@dataclass
class Reference:
    """What a run was given as its reference: the spec for the engine and what the recipe records of it."""

    spec: ReferenceSpec | None  # None: no picture now (off, or SEQUENTIAL's view 1 becomes it later)
    recipe: dict = field(default_factory=dict)


def reference_pixels(image: bpy.types.Image) -> np.ndarray:
    """The image as it looks on an sRGB display: float32 (h, w, 3) in 0..1, top row first.

    An image without pixels (its file missing, a datablock with no data) is refused with a ValueError naming it.
    """
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"The Reference Image '{image.name}' has no pixels (is its file missing?): pick another "
                         "image or clear Reference Image")
    rgb = pixels.read_display_pixels(image)[..., :3]
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def pixels_hash(array: np.ndarray) -> str:
    """A content hash of the pixels the adapter sees (their shape included): the same picture gives the same
    hash in any file, another picture under the same name does not."""
    digest = hashlib.sha256(f"{array.shape}".encode())
    digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def image_hash(image: bpy.types.Image) -> str:
    """``pixels_hash`` of what ``image`` would give a run as its reference now."""
    return pixels_hash(reference_pixels(image))


def reference_from_settings(settings) -> Reference:
    """The scene's reference: the Reference Image read now, or (SEQUENTIAL's view 1 as the reference) none yet.

    Raises ValueError (a clear message) for an image without pixels; reads nothing from the disk else.
    """
    from .requests import resolve_model_path

    strength = float(settings.reference_strength)
    model = resolve_model_path(settings.reference_model)
    image = settings.reference_image
    if image is None:
        if first_view_asked(settings):
            return Reference(None, {"first_view": True, "strength": strength, "model": model})
        return Reference(None)
    array = reference_pixels(image)
    spec = ReferenceSpec(image=array, strength=strength, model=model)
    spec.validate()
    return Reference(spec, {"image": image.name, "sha256": pixels_hash(array), "strength": strength,
                            "model": model})


def first_view_asked(settings) -> bool:
    """View 1's result as the reference of the later views: Whole Object, Sequential, no Reference Image."""
    return (settings.reference_first_view and settings.reference_image is None and settings.target == "OBJECT"
            and settings.object_method == "SEQUENTIAL")


def add_to_recipe(recipe: dict, reference: Reference | None) -> None:
    """The run's reference into ``recipe`` (in place): what Blender knows (the image's name and hash) over
    what the engine recorded (the adapter it used, its revision)."""
    if reference is None or not reference.recipe:
        return
    recorded = recipe.get(RECIPE_KEY)
    entry = dict(recorded) if isinstance(recorded, dict) else {}
    for key, value in reference.recipe.items():
        if key == "model" and entry.get("model"):
            continue  # the engine's: the adapter actually used, not the setting ("" = the default)
        entry[key] = value
    recipe[RECIPE_KEY] = entry


def plan_reference(settings, plan) -> None:
    """The reference of a generation's ``plan`` (a ``plan.Plan``): read now, put on its request, its recipe entry
    kept for the result. Raises ValueError before anything runs (a picture without pixels)."""
    plan.reference = reference_from_settings(settings)
    plan.request.reference = plan.reference.spec
    if plan.reference.recipe and settings.reference_strength > 0:  # at 0 no adapter is loaded
        check_adapter(plan.reference.recipe["model"], plan.request.model, plan.options)
    if settings.reference_first_view and settings.reference_image is None and not first_view_asked(settings):
        plan.notes.append("View 1 as Reference applies to Whole Object with Method Sequential only: not used")


def restore_from_recipe(settings, recipe: dict) -> tuple[list[str], list[str]]:
    """Use This Image's Settings: the reference settings of ``recipe`` back into ``settings``.

    The picture is set only when an image of that name is in the file and holds the same pixels (its hash); a
    same-named image with other pixels is not silently taken. Returns (the settings set, warnings).
    """
    entry = recipe.get(RECIPE_KEY)
    if not isinstance(entry, dict):  # made without a reference: off, so generating again makes the same image
        settings.reference_image = None
        settings.reference_first_view = False
        return ["reference_image"], []
    used, warnings = [], []
    strength = entry.get("strength")
    if isinstance(strength, (int, float)) and not isinstance(strength, bool) and 0.0 <= strength <= 1.0:
        settings.reference_strength = strength
        used.append("reference_strength")
    if isinstance(entry.get("model"), str):
        settings.reference_model = entry["model"]
        used.append("reference_model")
    if entry.get("first_view"):
        settings.reference_image = None
        settings.reference_first_view = True
        return used + ["reference_first_view"], warnings
    name = entry.get("image")
    if not isinstance(name, str):
        return used, warnings
    image = bpy.data.images.get(name)
    if image is None:
        warnings.append(f"its reference image '{name}' is not in this file: Reference Image left as it was")
        return used, warnings
    try:
        same = image_hash(image) == entry.get("sha256")
    except ValueError:
        same = False
    if not same:
        warnings.append(f"the image '{name}' in this file is not the reference it was made with (other pixels): "
                        "Reference Image left as it was")
        return used, warnings
    settings.reference_image = image
    settings.reference_first_view = False
    return used + ["reference_image"], warnings


def check_adapter(adapter: str, model: str, options) -> None:
    """The IP-Adapter ``adapter`` ("" = the default of ``model``'s family) can be had: on disk, in a cache, or
    (online) from the hub; read from the disk alone, nothing loaded. Else ValueError naming what is missing, so a
    run that needs it (SEQUENTIAL's view 1 as the reference too) is refused before anything runs."""
    from ..engine import EngineError
    from ..engine.upscale_models import check_adapter_available

    try:
        check_adapter_available(adapter, model, options)
    except (EngineError, ValueError) as error:
        raise ValueError(str(error)) from None
