"""Before material maps run: can the Marigold models they read be had? Answered from the disk alone.

Like ``upscale_models.py``: loads nothing and asks nothing of the hub, so the add-on can refuse a run (a model
not in any cache while offline, a path that is not there, a folder that is no Marigold pipeline of the right
kind) before it starts, with the same words the engine would use. What it cannot tell before downloading (a
repo id not cached while downloads are allowed) is left to the run, whose download reports its size first
(``ProgressEvent(stage="DOWNLOAD")``: bytes of the total the hub listed).

Imports no torch at module level (``material_maps`` for which runs a request needs; ``huggingface_hub`` when a
repo id is looked up).
"""

from __future__ import annotations

from pathlib import Path

from . import hub, sources
from .errors import ModelNotFoundError
from .material_maps import KINDS, model_name, plan
from .material_maps_request import DEFAULT_NORMALS_MODEL, DEFAULT_PBR_MODEL, MaterialMapsRequest
from .request import EngineOptions

# Approximate downloads of the defaults (fp16 variant; fp32 twice as much), for the panel before the first run.
APPROX_DOWNLOAD_BYTES = {DEFAULT_PBR_MODEL: int(2.6e9), DEFAULT_NORMALS_MODEL: int(2.6e9)}


def check_available(request: MaterialMapsRequest, options: EngineOptions) -> None:
    """Raise ``ModelNotFoundError`` naming a model ``request`` reads that cannot be had (a path that is not
    there, a repo id in no cache while offline), or ``EngineError`` naming one that is no Marigold pipeline of
    the right kind (from its ``model_index.json`` on disk)."""
    for run in plan(request):
        _, pipelines, field, default = KINDS[run.kind]
        what = f"The {run.kind} model"
        source = sources.classify(model_name(request, run.kind), allow_pickle=options.allow_pickle)
        if source.kind == "SINGLE_FILE":
            raise ModelNotFoundError(f"{what} {source.location} is a single file; {field} is a diffusers folder or "
                                     f"a repo id (e.g. {default}).")
        folder = Path(source.location) if source.kind == "FOLDER" else _cached(source.location, options)
        if folder is None:
            if hub.hub_offline(options.offline):
                caches = hub.lookup_caches(options.cache_dir, options.read_cache_dirs)
                raise ModelNotFoundError(
                    f"{what} {source.location} is not in the model caches ({', '.join(caches)}) and "
                    f"{hub.offline_reason(options.offline)}: go online once so it can be downloaded, or choose "
                    "one on disk."
                )
            continue
        sources.check_pipeline_index(sources.read_index(folder), source.location, pipelines)


def _cached(repo_id: str, options: EngineOptions) -> Path | None:
    for cache in hub.lookup_caches(options.cache_dir, options.read_cache_dirs):
        folder = hub.cached_snapshot(repo_id, cache)
        if folder is not None and (Path(folder) / "model_index.json").is_file():
            return Path(folder)
    return None
