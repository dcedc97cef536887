"""``latent_textures.use_image_settings``: fill the panel from a generated image's recipe, to tweak and regenerate."""

import bpy

# The recipe fields that are panel settings; any other key (version, family, device, a newer field...) is ignored.
RECIPE_SETTINGS = ("prompt", "negative_prompt", "model", "mode", "seed", "steps", "scheduler", "guidance_scale",
                   "strength", "width", "height", "seamless", "target",
                   "object_method", "object_views", "texture_size", "color_match")  # Whole Object results
# SYNC records its settings in the recipe's ``sync`` dict: its key -> the panel setting.
SYNC_SETTINGS = (("fraction", "sync_fraction"), ("attention", "sync_attention"))


def recipe_image(context, name: str):
    """The named image, else the Image Editor's image, else the last result."""
    if name:
        return bpy.data.images.get(name)
    space = getattr(context, "space_data", None)
    image = getattr(space, "image", None) if getattr(space, "type", "") == "IMAGE_EDITOR" else None
    return image if image is not None else context.scene.latent_textures.result_image


def _accepts(prop, value) -> bool:
    """Would the setting hold ``value`` as it is (Blender would clamp numbers and refuse unknown enum items)?"""
    if prop.type == "ENUM":
        return isinstance(value, str) and value in {item.identifier for item in prop.enum_items}
    if prop.type == "STRING":
        return isinstance(value, str)
    if prop.type in {"INT", "FLOAT"}:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and (prop.type == "FLOAT" or float(value).is_integer()) and prop.hard_min <= value <= prop.hard_max
    return False


class LATENT_TEXTURES_OT_use_image_settings(bpy.types.Operator):
    bl_idname = "latent_textures.use_image_settings"
    bl_label = "Use This Image's Settings"
    bl_description = (
        "Fill the panel with the settings this generated image was made with (prompt, seed, model and every "
        "other setting in its recipe), to tweak them and generate again"
    )
    bl_options = {"REGISTER", "UNDO"}

    image: bpy.props.StringProperty(
        name="Image", description="The image whose recipe to use (default: the Image Editor's image, else the "
                                  "last generated one)", options={"SKIP_SAVE"},
    )

    def execute(self, context):
        image = recipe_image(context, self.image)
        if image is None:
            self.report({"ERROR"}, f"No image named '{self.image}'" if self.image else "No image to read settings from")
            return {"CANCELLED"}
        recipe = image.get("latent_textures")
        if recipe is None or not hasattr(recipe, "to_dict"):
            self.report({"ERROR"}, f"'{image.name}' has no Latent Textures recipe (it was not generated here)")
            return {"CANCELLED"}
        recipe = recipe.to_dict()
        settings = context.scene.latent_textures
        properties = settings.bl_rna.properties
        used, skipped = [], []
        sync = recipe.get("sync") if isinstance(recipe.get("sync"), dict) else {}
        found = [(name, recipe[name]) for name in RECIPE_SETTINGS if name in recipe]
        found += [(name, sync[key]) for key, name in SYNC_SETTINGS if key in sync]
        for name, value in found:
            if _accepts(properties[name], value):
                setattr(settings, name, value)
                used.append(name)
            else:
                skipped.append(f"{name}={value!r}")
        if "seed" in used:
            settings.use_random_seed = False  # the recipe's seed, or the image is not the same
        from ..bridge.reference import restore_from_recipe

        reference_used, reference_warnings = restore_from_recipe(settings, recipe)
        used += reference_used
        for warning in reference_warnings:
            self.report({"WARNING"}, f"'{image.name}': {warning}")
        if skipped:
            self.report({"WARNING"}, f"Not used from '{image.name}' (this version does not have them): "
                        + ", ".join(skipped))
        revision = recipe.get("model_revision")
        note = f" (model revision {revision[:19]})" if isinstance(revision, str) else ""
        self.report({"INFO"}, f"Settings of '{image.name}': {len(used)} of its recipe{note}")
        return {"FINISHED"}
