"""The Material Maps sub-panel: which maps each result gets, the Marigold models, and the extra work they cost."""

from __future__ import annotations

import functools
import json
from pathlib import Path

# Both default Marigold v1-1 models denoise in 4 steps (their model_index's default_denoising_steps); a model in
# a folder says its own.
DEFAULT_MAP_STEPS = 4


def model_steps(model: str) -> int:
    """The denoising steps ``model`` runs by default: its folder's model_index.json, else the default models'."""
    import bpy

    path = Path(bpy.path.abspath(model.strip())) / "model_index.json" if model.strip() else None
    try:
        return _index_steps(str(path), path.stat().st_mtime) if path is not None else DEFAULT_MAP_STEPS
    except OSError:  # a repo id, or not there (the run says so)
        return DEFAULT_MAP_STEPS


@functools.lru_cache(maxsize=8)
def _index_steps(path: str, modified: float) -> int:
    try:
        steps = json.loads(Path(path).read_text(encoding="utf-8")).get("default_denoising_steps")
    except (OSError, ValueError):
        return DEFAULT_MAP_STEPS
    return int(steps) if isinstance(steps, int) and steps > 0 else DEFAULT_MAP_STEPS


def extra_work(settings) -> str:
    """What the maps add to each result, before the click: each Marigold run x its steps (x views for Whole
    Object)."""
    from ..engine.material_maps_request import INTRINSICS_MAPS, NORMALS_MAPS

    chosen = set(settings.pbr_maps)
    runs = [f"{name} × {model_steps(model)} steps"
            for name, maps, model in (("intrinsics", INTRINSICS_MAPS, settings.pbr_model),
                                      ("normals", NORMALS_MAPS, settings.normals_model)) if chosen & set(maps)]
    if not runs:
        return ""
    views = ""
    if settings.target == "OBJECT":
        from ..bridge.object_target import view_count

        views = f", × {view_count(settings)} views"
    maps = "map" if len(chosen) == 1 else "maps"
    return f"{len(chosen)} {maps}: {' + '.join(runs)}{views} per result"


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
