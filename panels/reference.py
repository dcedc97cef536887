"""The Reference section: an image prompt (IP-Adapter) beside the text prompt. Drawing only: no data changes."""

# What a reference costs, said before clicking: the adapter's image encoder (a CLIP vision model, ~2.5 GB for
# SD 1.x's default) is loaded beside the model and encodes the picture once per run, however many views or tiles.
COST_LINE = "Cost: the image encoder runs once per run (views and tiles reuse it)"


def first_view_shown(settings) -> bool:
    """View 1 as Reference is a Whole Object, Method Sequential setting."""
    return settings.target == "OBJECT" and settings.object_method == "SEQUENTIAL"


def draw_reference(layout, settings) -> None:
    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.template_ID(settings, "reference_image", open="image.open")
    image = settings.reference_image
    first_view = first_view_shown(settings) and image is None and settings.reference_first_view
    col = layout.column()
    col.active = image is not None or first_view
    col.prop(settings, "reference_strength", text="Strength", slider=True)
    col.prop(settings, "reference_model", text="Model", placeholder="Default for the model's family")
    if first_view_shown(settings):
        row = layout.row()
        row.active = image is None  # a Reference Image is every view's reference
        row.prop(settings, "reference_first_view")
    if image is not None and (image.size[0] == 0 or image.size[1] == 0):
        layout.label(text=f"'{image.name}' has no pixels (is its file missing?)", icon="ERROR")
        return
    if image is None and not first_view:
        layout.label(text="No reference image: the prompt alone", icon="INFO")
        return
    if settings.reference_strength == 0.0:
        layout.label(text="Strength 0: the reference has no effect", icon="INFO")
    if not settings.reference_model.strip():
        draw_default_adapters(layout)
    layout.label(text=COST_LINE, icon="INFO")


def draw_default_adapters(layout) -> None:
    """Which IP-Adapter an empty Model means, per family (as the Control section lists its ControlNets)."""
    from ..engine.ip_adapters import DEFAULT_IP_ADAPTERS, IP_ADAPTER_REPO

    col = layout.column(align=True)
    col.scale_y = 0.8
    for family, label in (("SD1", "SD 1.x"), ("SDXL", "SDXL")):
        col.label(text=f"{label}: {IP_ADAPTER_REPO}/{DEFAULT_IP_ADAPTERS[family]}", icon="INFO")
    col.label(text="SD 2.x: no default adapter: set a Model", icon="INFO")
