"""The engine: a thin facade over the model cache and the tasks that run on it.

``Engine`` owns the options, the placement (device, dtype, speed modes) and the ``ModelCache``
(``model_cache.py``); each public method validates, takes the lock and hands the work to a task
module: ``generation.py`` (txt2img/img2img/inpaint), ``upscale_tiled.py``, ``upscale_x4.py`` and
``material_maps.py``.
Tasks never import each other or this module; where a task needs another (a tile is a generation),
it gets a callable.

Imports torch (through ``placement``); the package imports this module only when an engine is first
asked for (``get_engine``).
"""

from __future__ import annotations

import threading
from typing import Any

from . import base_model, decoding, devices, generation, material_maps, sync, upscale_tiled, upscale_x4
from .errors import EngineError
from .material_maps_request import MaterialMapsRequest, MaterialMapsResult
from .model_cache import ModelCache
from .placement import Placement
from .request import (
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    LoadedModelInfo,
    ProgressCallback,
    seed_or_random,
)
from .upscale import UpscaleRequest


class Engine:
    """Runs generation requests on one cached model.

    Not meant to run two generations at once: calls are serialised by a lock.
    ``cancel_event`` and ``on_progress`` make it safe to drive from a worker thread.
    """

    def __init__(self, options: EngineOptions = EngineOptions()) -> None:  # noqa: B008 - frozen, immutable
        options.validate()
        self.options = options
        self.placement = Placement(options)
        self.cache = ModelCache(self.placement)
        self._lock = threading.RLock()
        self.preview_decoder = "LINEAR"  # see set_preview_decoder
        self._preview_source: str | None = None

    @property
    def device(self) -> Any:
        """The ``torch.device`` every model runs on."""
        return self.placement.device

    @device.setter
    def device(self, device: Any) -> None:
        self.placement.device = device

    @property
    def dtype(self) -> Any:
        """The ``torch.dtype`` the models are loaded in."""
        return self.placement.dtype

    @property
    def channels_last(self) -> bool:
        """The UNet/VAE layout: ``AUTO`` is channels-last on the CPU only (measured there; not on GPUs)."""
        return self.placement.channels_last

    @property
    def packs_weights(self) -> bool:
        """Convolution/linear weights packed once (``packed_weights``): CPU only, not under ``torch.compile``."""
        return self.placement.packs_weights

    @property
    def load_count(self) -> int:
        """Pipelines read from disk so far: base models and x4 upscalers (not ControlNets, LoRAs, previews)."""
        return self.cache.loads[base_model.SLOT] + self.cache.loads[upscale_x4.SLOT]

    @property
    def _model(self) -> base_model.LoadedModel | None:
        """The base model in the cache, or None (for the tests and benches that look inside)."""
        return self.cache.newest(base_model.SLOT)

    def set_preview_decoder(self, kind: str, source: str | None = None) -> None:
        """The live preview's decoder: ``LINEAR`` (default, no model) or ``TAESD`` (the tiny VAE of the family,
        downloaded on first use with online access; ``source``: a local ``AutoencoderTiny`` folder instead).
        Without it on disk and offline, the preview falls back to ``LINEAR``."""
        from .preview_decoder import PREVIEW_DECODERS

        if kind not in PREVIEW_DECODERS:
            raise ValueError(f"preview decoder must be one of {', '.join(PREVIEW_DECODERS)}; got {kind!r}.")
        self.preview_decoder, self._preview_source = kind, source

    # --- the model cache ------------------------------------------------------------------------------

    def loaded_model(self) -> LoadedModelInfo | None:
        """What is in memory, or None."""
        model = self._model
        return base_model.info(model, self.placement) if model is not None else None

    def free(self) -> None:
        """Drop every model (the base model, its ControlNets, the upscaler, ...) and give the memory back."""
        with self._lock:
            self.cache.free()

    def load(
        self,
        model: str,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> LoadedModelInfo:
        """Load (or download) ``model`` now, as ``generate`` would; returns what is in memory."""
        with self._lock:
            loaded = self._load(model, on_progress, cancel_event)
        return base_model.info(loaded, self.placement)

    def _load(
        self, model: str, on_progress: ProgressCallback | None, cancel_event: threading.Event | None
    ) -> base_model.LoadedModel:
        with devices.oom_as_engine_error(self.device):
            return base_model.load(self.cache, model, on_progress, cancel_event)

    def needs_vae_tiling(self, pixels: int) -> bool:
        """VAE tiling ``AUTO`` for the loaded model: would an untiled decode of ``pixels`` not fit beside it?"""
        model = self._model
        if model is None:
            raise EngineError("needs_vae_tiling() asks about the loaded model, and none is loaded.")
        return decoding.needs_vae_tiling(model, self.placement, pixels)

    # --- the tasks ------------------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        previews: bool = True,
        recorder: Any = None,
    ) -> GenerationResult:
        """Validate and run ``request`` on the cached model (loading or downloading it first if needed).

        With ``control`` set, the ControlNet (``control_model`` or the family's default) is loaded
        beside the model and its pipeline built with ``from_pipe`` on the model's components; with
        ``loras``, their adapters are activated (and every other one disabled). INPAINT results
        carry ``init_image``'s own pixels wherever the feathered mask is 0.

        Args:
            request: what to generate; ``seed=None`` draws a random seed (returned in the result).
            on_progress: called from this thread with ``ProgressEvent(stage="DOWNLOAD")`` while a hub
                model downloads (bytes) and ``ProgressEvent(stage="DENOISE")`` after every denoising
                step (with a latent preview). It may raise ``GenerationCancelled`` to stop.
            cancel_event: set it from any thread to stop; the run ends at the next step boundary.
            previews: False skips computing the per-step preview (``ProgressEvent.preview`` is None):
                nobody sees it headless.
            recorder: an ``insight.InsightRecorder`` that records this run's filmstrip / attention maps
                (its ``images`` after the run); None records nothing and costs nothing.

        Returns:
            The RGBA image (float32, top row first, 0..1), the seed used and the recipe.

        Raises:
            ValueError: a request field is invalid (the message names it and what it accepts), also
                for this model: control/mode an SD 2 depth model cannot run, no default ControlNet.
            GenerationCancelled: cancelled; no result (also when the event is set during the VAE decode).
            ModelNotFoundError, UnsafeModelFormatError, OutOfMemoryError, EngineError: with a message
                that says what to do.
        """
        request.validate()
        if recorder is not None:
            recorder.validate(request.prompt)
        seed = seed_or_random(request.seed)
        with self._lock:
            return generation.generate(
                self.cache,
                request,
                seed,
                on_progress=on_progress,
                cancel_event=cancel_event,
                previews=previews,
                recorder=recorder,
                tiny_preview=self.preview_decoder == "TAESD",
                tiny_preview_source=self._preview_source,
            )

    def generate_sync(
        self,
        request: GenerationRequest,
        views: Any,
        *,
        fraction: float = sync.DEFAULT_FRACTION,
        weight_exponent: float = sync.DEFAULT_WEIGHT_EXPONENT,
        control_images: Any = None,
        bake: Any = None,
        attention: str = "NONE",
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        previews: bool = True,
    ) -> tuple[GenerationResult, Any]:
        """Whole Object SYNC (``engine/sync.py``): every view of ``views`` (``geometry.latent_sync.LatentView`` at
        the request's latent size) denoised in one batch, the first round(``fraction`` x steps) steps synchronised
        through one latent texture. ``control_images``: one per view when ``request.control`` is set (view 1's
        is ``request.control_image``). ``bake``: how x0 goes into the latent texture (``sync.SyncPlan.bake``; the
        Whole Object target passes ``geometry.latent_sync.LatentBake``). ``attention``: cross-view attention
        (``sync_attention.ATTENTION_MODES``: NONE, NEIGHBOURS, NEIGHBOURS_REFERENCE). Returns (the result, view
        1's image; the (V, h, w, 3) decoded views).

        The UNet (and ControlNet) run the views in groups that fit the device's memory (``view_groups``; with
        cross-view attention every view in one batch); the progress events then carry the view group as
        ``part``/``parts`` ("step i/n · view group g/G"), and the cancel event is checked before every group.

        Raises ValueError naming ``scheduler`` (one SYNC cannot step), ``views``, ``sync_fraction``,
        ``sync_attention`` or ``control_images`` before anything runs; ``view_groups.ViewsDoNotFitError`` (an
        ``OutOfMemoryError``) naming the most views that fit, once the model is loaded and before the first step;
        otherwise as ``generate``."""
        request.validate()
        sync.check_scheduler(request.scheduler)
        if request.mode != "TXT2IMG":
            raise ValueError(f"mode must be TXT2IMG for SYNC; got {request.mode}")
        batch = sync.SyncViews(views, fraction=fraction, weight_exponent=weight_exponent,
                               control_images=control_images if request.control != "NONE" else None, bake=bake,
                               attention=attention, on_progress=on_progress, cancel_event=cancel_event)
        batch.check(request.width, request.height, request.steps)
        seed = seed_or_random(request.seed)
        with self._lock:
            result = generation.generate(self.cache, request, seed, on_progress=batch.progress(on_progress),
                                         cancel_event=cancel_event, previews=previews, views=batch,
                                         tiny_preview=self.preview_decoder == "TAESD",
                                         tiny_preview_source=self._preview_source)
        return result, batch.images

    def upscale(
        self,
        request: UpscaleRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        previews: bool = True,
    ) -> GenerationResult:
        """Upscale ``request.image`` (an ``UpscaleRequest``, see ``engine/upscale.py``): with this engine's model
        (``TILED_DIFFUSION``, every tile a ``generate``) or the dedicated x4 upscaler beside it (``X4_UPSCALER``)."""
        request.validate()
        seed = seed_or_random(request.seed)
        with self._lock:
            if request.method == "X4_UPSCALER":
                return upscale_x4.upscale(self.cache, request, seed, on_progress=on_progress,
                                          cancel_event=cancel_event)

            def load_pipeline(model: str) -> Any:
                return self._load(model, on_progress, cancel_event).base

            return upscale_tiled.upscale(request, seed, generate=self.generate, load_pipeline=load_pipeline,
                                         on_progress=on_progress, cancel_event=cancel_event, previews=previews)

    def material_maps(
        self,
        request: MaterialMapsRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
    ) -> MaterialMapsResult:
        """The material maps of ``request.image`` (``material_maps.py``): albedo/roughness/metallic from the
        intrinsics model, normal/height from the normals model, each model in its own cache slot beside the
        artist's model (least recently used idle models released first where memory runs short).

        Progress: ``ProgressEvent(stage="MAPS", detail=<maps>)`` after every denoising step (and ``DOWNLOAD``
        events while a model downloads); ``cancel_event`` stops the run before the next UNet call.

        Raises ValueError naming a bad request field; ``GenerationCancelled``; ``ModelNotFoundError`` (a model
        not on disk while offline), ``EngineError`` (not a Marigold pipeline of the right kind, by name)."""
        request.validate()
        with self._lock:
            return material_maps.material_maps(self.cache, request, on_progress=on_progress,
                                               cancel_event=cancel_event)
