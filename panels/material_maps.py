"""The Material Maps sub-panel: which maps each result gets, the Marigold models, and the extra work they cost."""

from __future__ import annotations

# Both default Marigold v1-1 models denoise in 4 steps (their model_index default_denoising_steps).
DEFAULT_MAP_STEPS = 4


def extra_work(settings) -> str:
    """What the maps add to each result, before the click: Marigold runs x steps (x views for Whole Object)."""
    from ..engine.material_maps_request import INTRINSICS_MAPS, NORMALS_MAPS

    chosen = set(settings.pbr_maps)
    runs = [name for name, maps in (("intrinsics", INTRINSICS_MAPS), ("normals", NORMALS_MAPS)) if chosen & set(maps)]
    if not runs:
        return ""
    views = ""
    if settings.target == "OBJECT":
        from ..bridge.object_target import view_count

        views = f" × {view_count(settings)} views"
    noun = "run" if len(runs) == 1 else "runs"
    maps = "map" if len(chosen) == 1 else "maps"
    return (f"{len(chosen)} {maps}: {len(runs)} Marigold {noun} ({', '.join(runs)}) × {DEFAULT_MAP_STEPS} steps"
            f"{views} per result")


def draw_material_maps(layout, settings) -> None:
    col = layout.column()
    col.prop(settings, "pbr_maps")
    if "HEIGHT" in settings.pbr_maps and settings.target in ("OBJECT", "PROJECT"):
        col.label(text="Height: flat textures only (Image, Material)", icon="ERROR")
    work = extra_work(settings)
    if work:
        col.label(text=work, icon="TIME")
    col.prop(settings, "pbr_model", text="Intrinsics", placeholder="prs-eth/marigold-iid-appearance-v1-1")
    col.prop(settings, "normals_model", text="Normals", placeholder="prs-eth/marigold-normals-v1-1")
    row = layout.row()
    row.enabled = settings.result_image is not None and bool(settings.pbr_maps)
    button = row.operator("latent_textures.material_maps", icon="NODE_MATERIAL")
    button.maps = set(settings.pbr_maps)
