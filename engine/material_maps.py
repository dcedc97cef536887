"""The material-maps task (issue 30): albedo, roughness, metallic, normal and height maps of one flat image,
made in-process by Marigold pipelines.

* ``MarigoldIntrinsicsPipeline`` (default ``prs-eth/marigold-iid-appearance-v1-1``) in the cache's
  ``pbr_intrinsics`` slot: one run gives albedo, roughness and metallic; which target and channel holds each is
  read from the model's ``target_properties`` (``map_numerics.target_channels``), never assumed.
* ``MarigoldNormalsPipeline`` (default ``prs-eth/marigold-normals-v1-1``) in the ``pbr_normals`` slot: normals in
  the camera frame (X right, Y up, Z towards the viewer): for a flat texture, its tangent-space normal map.
  Height is integrated from them (``map_numerics.height_from_normals``): no third model, and it wraps.

Each model loads into its own slot beside the artist's model (like the x4 upscaler), resolved like every model
(``model_cache.read_pipeline``), after ``ModelCache.make_room`` released the least recently used idle models
if its weights would not fit. The image is resampled to the processing size (the longer side the model's
``default_processing_resolution``, both sides multiples of what the VAE and UNet halve, so the pipeline pads
nothing) with wrap-aware weights, run with circular padding on the seamless axes (``tiling.seamless``), and
every map resampled back to the image's size the same way: a seamless texture's maps tile along its axes.
Only the pipelines' ``prediction`` arrays are read (never ``visualize_*``: gamma and colour maps applied).

A task module: it imports the core, never another task. numpy at module level; torch when a run starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import map_numerics, sources
from .errors import EngineError, check_cancel
from .material_maps_request import (
    DEFAULT_NORMALS_MODEL,
    DEFAULT_PBR_MODEL,
    INTRINSICS_MAPS,
    NORMALS_MAPS,
    MaterialMapsRequest,
    MaterialMapsResult,
)
from .request import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from .model_cache import ModelCache, ModelFiles

log = logging.getLogger(__name__)

INTRINSICS_SLOT = "pbr_intrinsics"
NORMALS_SLOT = "pbr_normals"
# What each Marigold kind is: its slot, the pipeline classes accepted, the request field naming it, its default.
KINDS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "intrinsics": (INTRINSICS_SLOT, sources.MARIGOLD_INTRINSICS_PIPELINES, "pbr_model", DEFAULT_PBR_MODEL),
    "normals": (NORMALS_SLOT, sources.MARIGOLD_NORMALS_PIPELINES, "normals_model", DEFAULT_NORMALS_MODEL),
}
# The names an intrinsics model may give each map's quantity in its target_properties.
QUANTITY_NAMES = {"ALBEDO": ("albedo",), "ROUGHNESS": ("roughness",), "METALLIC": ("metallicity", "metallic")}


@dataclass
class LoadedMarigold:
    """A Marigold pipeline in its slot of the model cache, with where its weights came from."""

    key: tuple[str, str, str, str]
    kind: str
    source: str  # the model string as asked for (a repo id, a folder)
    pipe: Any
    where: ModelFiles


@dataclass(frozen=True)
class MarigoldRun:
    """One Marigold run of a request: the model ``kind`` and the maps it makes (in request order)."""

    kind: str
    maps: tuple[str, ...]

    @property
    def label(self) -> str:
        """What the progress line calls it: the maps it makes, lower case ("albedo, roughness")."""
        return ", ".join(m.lower() for m in self.maps)


def plan(request: MaterialMapsRequest) -> list[MarigoldRun]:
    """The runs ``request`` needs: the intrinsics model for albedo/roughness/metallic, the normals model for
    normal and height; each model runs once whatever number of its maps is asked for."""
    runs = []
    for kind, maps in (("intrinsics", INTRINSICS_MAPS), ("normals", NORMALS_MAPS)):
        asked = tuple(m for m in request.maps if m in maps)
        if asked:
            runs.append(MarigoldRun(kind, asked))
    return runs


def model_name(request: MaterialMapsRequest, kind: str) -> str:
    """The model ``kind`` reads for ``request``: its field, or the default when empty."""
    _, _, field, default = KINDS[kind]
    return getattr(request, field).strip() or default


def material_maps(
    cache: ModelCache,
    request: MaterialMapsRequest,
    *,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> MaterialMapsResult:
    """Run the validated ``request``; progress ``ProgressEvent(stage="MAPS")`` per denoising step."""
    from . import devices

    with devices.oom_as_engine_error(cache.placement.device):
        return _run(cache, request, on_progress=on_progress, cancel_event=cancel_event)


def _run(
    cache: ModelCache,
    request: MaterialMapsRequest,
    *,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> MaterialMapsResult:
    rgb = np.ascontiguousarray(request.image[..., :3], dtype=np.float32)
    runs = plan(request)
    maps: dict[str, np.ndarray] = {}
    recipes: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for part, marigold_run in enumerate(runs, start=1):
        check_cancel(cancel_event)
        started = time.perf_counter()
        loaded = load_marigold(cache, marigold_run.kind, model_name(request, marigold_run.kind),
                               on_progress=on_progress, cancel_event=cancel_event)
        timings[f"load_{marigold_run.kind}"] = round(time.perf_counter() - started, 3)
        if marigold_run.kind == "intrinsics":
            quantities = check_intrinsics(loaded, marigold_run.maps)
        started = time.perf_counter()
        progress = _step_progress(on_progress, part, len(runs), marigold_run.label)
        prediction, knobs = predict(loaded, rgb, request, progress, cancel_event)
        timings[marigold_run.kind] = round(time.perf_counter() - started, 3)
        # Merged into the source's recipe by the caller: its own keys (steps, seed, model_revision, ...) stay the
        # generation's; this run's knobs go under "pbr".
        knobs.update(model_files=loaded.where.files, model_revision=loaded.where.revision or "",
                     ensemble_size=request.ensemble_size, seed=request.seed, seamless=request.seamless)
        if marigold_run.kind == "intrinsics":
            made = intrinsics_maps(prediction, quantities, rgb, request)
        else:
            made, span, timings["height"] = normals_maps(prediction, rgb.shape[:2], marigold_run.maps, request)
        for name in marigold_run.maps:
            key = name.lower()
            maps[key] = made[key]
            recipes[key] = {"pbr_map": key, _field(marigold_run.kind): loaded.source, "pbr": dict(knobs)}
        if "ALBEDO" in marigold_run.maps:
            recipes["albedo"]["pbr"]["albedo_chroma"] = request.albedo_chroma
        if "HEIGHT" in marigold_run.maps:
            recipes["height"]["pbr"].update(height_from="normals (Frankot-Chellappa)", height_span_px=round(span, 4))
    check_cancel(cancel_event)
    return MaterialMapsResult(maps=maps, recipes=recipes, timings=timings)


def _field(kind: str) -> str:
    return KINDS[kind][2]


# --- loading ----------------------------------------------------------------------------------------------


def load_marigold(
    cache: ModelCache,
    kind: str,
    model: str,
    *,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
) -> LoadedMarigold:
    """The Marigold ``kind`` (``intrinsics``/``normals``) model ``model`` from its slot of the cache, else read
    (or downloaded) into it: a repo id or diffusers folder whose ``model_index.json`` names that pipeline class
    (any other is refused by name before its weights are read). Room is made first (``make_room``)."""
    from .model_cache import loading, pipeline_bytes, read_pipeline

    slot, pipelines, field, _ = KINDS[kind]
    placement = cache.placement
    source = sources.classify(model, allow_pickle=placement.options.allow_pickle)
    key = placement.cache_key(source)

    def make_room(folder: Path) -> None:
        cache.make_room(pipeline_bytes(folder, source.location, placement.dtype), in_use=(slot,))

    def read() -> LoadedMarigold:
        if source.kind == "SINGLE_FILE":
            raise EngineError(
                f"{source.location} is a single file; {field} is loaded from a diffusers folder or repo id "
                f"(e.g. {KINDS[kind][3]})."
            )
        with loading(f"The {kind} model {source.location}", "its files may be incomplete - download it again."):
            pipe, where = read_pipeline(source, placement, on_progress, cancel_event, pipelines,
                                        before_load=make_room)
        placement.place(pipe, pack_weights=False)  # weights read over a few steps: a packed copy costs memory
        log.info("Loaded the Marigold %s model %s on %s as %s", kind, source.location, placement.device,
                 placement.dtype)
        return LoadedMarigold(key, kind, model, pipe, where)

    return cache.load(slot, key, read)


def check_intrinsics(loaded: LoadedMarigold, maps: tuple[str, ...]) -> dict[str, tuple[int, int | None, str]]:
    """Where each of ``maps`` is in the model's prediction (``target_properties``); a model that does not
    predict one (the lighting model has no roughness or metallicity) is refused by name."""
    properties = loaded.pipe.target_properties or {}
    try:
        channels = map_numerics.target_channels(properties)
    except ValueError as error:
        raise EngineError(f"The intrinsics model {loaded.source} does not describe its targets ({error}).") from None
    found = {}
    for name in maps:
        quantity = next((q for q in QUANTITY_NAMES[name] if q in channels), None)
        if quantity is None:
            raise EngineError(
                f"The intrinsics model {loaded.source} predicts {', '.join(channels)}, not {name.lower()}; "
                f"choose an appearance model such as {DEFAULT_PBR_MODEL} for {name.lower()} maps."
            )
        found[name] = channels[quantity]
    return found


# --- running ----------------------------------------------------------------------------------------------


def size_multiple(pipe: Any) -> int:
    """Processing sides are multiples of this: the VAE's factor times what the UNet halves (so that a wrapped
    axis stays a torus through every downsampling, and the pipeline pads nothing)."""
    return int(pipe.vae_scale_factor) * 2 ** (len(pipe.unet.config.block_out_channels) - 1)


def predict(
    loaded: LoadedMarigold,
    rgb: np.ndarray,
    request: MaterialMapsRequest,
    on_step: Callable[[int, int], None] | None,
    cancel_event: threading.Event | None,
    *,
    latents: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One Marigold run on ``rgb`` (h, w, 3) sRGB: its ``prediction`` (targets, ph, pw, 3) at the processing
    size, and the knobs it ran with (steps, processing resolution and size). Cancel is checked before every
    UNet call; ``on_step(done, total)`` after each. ``latents``: the starting noise instead of the request's
    seed (the pipeline's own argument; the wrap tests roll it with the image)."""
    import torch

    from . import devices
    from .tiling import seamless, seamless_downsamples

    pipe = loaded.pipe
    steps = request.steps or pipe.default_denoising_steps
    resolution = request.processing_resolution
    if resolution is None:
        resolution = pipe.default_processing_resolution
    if not steps or resolution is None:
        raise EngineError(f"{loaded.source} has no default_denoising_steps or default_processing_resolution in its "
                          "model_index.json; it is no complete Marigold model.")
    height, width = map_numerics.processing_size(rgb.shape[0], rgb.shape[1], int(resolution), size_multiple(pipe))
    small = map_numerics.resample(rgb, height, width, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    pixels = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None]
    total = int(steps) * request.ensemble_size
    done = [0]

    def before_step(module: Any, args: Any) -> None:
        check_cancel(cancel_event)

    def after_step(module: Any, args: Any, output: Any) -> None:
        done[0] += 1
        if on_step is not None:
            on_step(min(done[0], total), total)

    unet = pipe.unet
    if request.seamless != "NONE" and hasattr(unet, "_orig_mod"):
        pipe.unet = unet._orig_mod  # compiled graphs know no circular padding
    hooks = [pipe.unet.register_forward_pre_hook(before_step), pipe.unet.register_forward_hook(after_step)]
    try:
        with seamless((pipe.unet, pipe.vae), request.seamless), seamless_downsamples((pipe.vae,), request.seamless), \
                torch.inference_mode():
            output = pipe(
                pixels,
                num_inference_steps=int(steps),
                ensemble_size=request.ensemble_size,
                processing_resolution=0,  # resampled here already, wrap-aware
                match_input_resolution=False,
                batch_size=1,
                generator=devices.seed_generator(request.seed) if latents is None else None,
                latents=latents,
                output_type="np",
            )
    finally:
        for hook in hooks:
            hook.remove()
        pipe.unet = unet
    check_cancel(cancel_event)
    prediction = np.asarray(output.prediction, dtype=np.float32)
    knobs = {"steps": int(steps), "processing_resolution": int(resolution), "processing_size": [width, height]}
    return prediction, knobs


def intrinsics_maps(
    prediction: np.ndarray,
    quantities: dict[str, tuple[int, int | None, str]],
    rgb: np.ndarray,
    request: MaterialMapsRequest,
) -> dict[str, np.ndarray]:
    """Albedo (sRGB, h x w x 3), roughness and metallic (linear grey, h x w) at the image's size from an
    intrinsics ``prediction`` (targets, ph, pw, 3) in 0..1, each read where ``quantities`` says."""
    height, width = rgb.shape[:2]
    maps = {}
    for name, (target, channel, space) in quantities.items():
        values = prediction[target] if channel is None else prediction[target][..., channel]
        values = map_numerics.resample(values, height, width, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
        values = np.clip(values, 0.0, 1.0)
        if name == "ALBEDO":
            if values.ndim == 2:
                values = np.repeat(values[..., None], 3, axis=-1)
            if space == "linear":
                values = map_numerics.linear_to_srgb(values).astype(np.float32)
            if request.albedo_chroma == "LIT":
                values = map_numerics.match_chroma(values, rgb)
        elif space == "srgb":  # a grey quantity stored display-referred: linear for Roughness/Metallic
            values = map_numerics.srgb_to_linear(values).astype(np.float32)
        maps[name.lower()] = np.ascontiguousarray(values, dtype=np.float32)
    return maps


def normals_maps(
    prediction: np.ndarray, size: tuple[int, int], maps: tuple[str, ...], request: MaterialMapsRequest
) -> tuple[dict[str, np.ndarray], float, float]:
    """Unit camera-frame normals (h, w, 3) at the image's size, and the height integrated from them (h, w) in
    0..1 with its span in pixels and the seconds the integration took (0, 0 when not asked for)."""
    height, width = size
    normals = map_numerics.resample(prediction[0], height, width, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.where(length > 1e-6, normals / np.maximum(length, 1e-6), np.array([0.0, 0.0, 1.0], np.float32))
    made = {"normal": np.ascontiguousarray(normals, dtype=np.float32)}
    span = seconds = 0.0
    if "HEIGHT" in maps:
        started = time.perf_counter()
        made["height"], span = map_numerics.height_from_normals(normals, wrap_x=request.wrap_x, wrap_y=request.wrap_y)
        seconds = round(time.perf_counter() - started, 3)
    return made, span, seconds


def _step_progress(
    on_progress: ProgressCallback | None, part: int, parts: int, label: str
) -> Callable[[int, int], None] | None:
    if on_progress is None:
        return None

    def on_step(done: int, total: int) -> None:
        on_progress(ProgressEvent(done, total, None, stage="MAPS", part=part, parts=parts, detail=label))

    return on_step
