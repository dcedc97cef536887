"""One generation at a time: the worker that runs the engine, and the queue back to the main thread.

The worker never touches bpy. It puts events on a queue; the main thread
drains them (a modal timer with a UI, or straight after the run headless).
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..engine import EngineOptions, GenerationRequest, UpscaleRequest


@dataclass
class JobEvent:
    kind: str  # "progress" | "done" | "cancelled" | "error"
    payload: Any = None


class GenerationJob:
    """Runs one engine request, on a worker thread (``start``) or in the caller's thread (``run``)."""

    def __init__(
        self,
        options: EngineOptions,
        request: GenerationRequest | UpscaleRequest,
        recorder: Any = None,
        previews: bool = True,
        upscale: UpscaleRequest | None = None,
        maps=None,
    ) -> None:
        self.options = options
        self.request = request
        self.recorder = recorder  # an engine.insight.InsightRecorder, or None
        self.preview_decoder = "LINEAR"  # the live preview's decoder (Engine.set_preview_decoder)
        self.previews = previews  # headless nobody sees them: the engine skips computing them
        self.upscale = upscale  # run on the generated image (Upscale After Generate)
        self.upscale_failure: str | None = None  # why that upscale failed: the generation is kept without it
        self.maps = maps  # Material Maps: a MaterialMapsRequest run on the result (its image and seed filled in)
        self.maps_result = None  # its MaterialMapsResult
        self.maps_failure: str | None = None  # why the maps failed: the generation is kept without them
        self.detail = ""  # stage MAPS: the maps being made
        self.events: queue.Queue[JobEvent] = queue.Queue()
        self.cancel_event = threading.Event()
        self.stage = "LOAD"  # LOAD, then DOWNLOAD (bytes) or DENOISE (steps)
        self.step = 0
        self.total = request.steps
        self.part = self.parts = 0  # tile i of n (upscale), view i of n (whole object); 0 = a single generation
        self.part_label = "Tile"  # what a part is called in ``describe``
        self.part_after_step = False  # "step i/n · view group g/G" (a part of a step) rather than "tile i/n · step"
        self.finished = False

    def start(self) -> None:
        thread = threading.Thread(target=self.run, name="latent_textures_generate", daemon=True)
        _workers.append(thread)
        thread.start()

    def run(self) -> None:
        from ..engine import EngineError, GenerationCancelled, get_engine

        try:
            result = self.work(get_engine(self.options))
        except GenerationCancelled:
            self.events.put(JobEvent("cancelled"))
        except EngineError as error:
            self.events.put(JobEvent("error", str(error)))
        except BaseException as error:  # noqa: BLE001 - an engine bug, or SystemExit/KeyboardInterrupt raised in a
            # library: this thread ends either way, so the main thread must hear of it (the traceback for the
            # console, a line for the artist) or its modal operator would wait for ever
            traceback.print_exc()
            self.events.put(JobEvent("error", f"Generation failed ({type(error).__name__}): {error}"))
        else:
            self.events.put(JobEvent("done", result))
        finally:
            self.request = None  # the source image goes with it: finished runs are kept around by Blender

    def work(self, engine) -> Any:
        """The engine calls of this job (worker thread, no bpy; a subclass may run several); raises as the engine does."""
        engine.set_preview_decoder(self.preview_decoder)
        progress = {"on_progress": self._on_progress, "cancel_event": self.cancel_event, "previews": self.previews}
        if isinstance(self.request, UpscaleRequest):
            return engine.upscale(self.request, **progress)
        result = engine.generate(self.request, recorder=self.recorder, **progress)
        if self.upscale is not None:  # the finished generation is kept; the run reports why it is not upscaled
            generated = result
            upscaled, self.upscale_failure = kept_on_failure(
                lambda: _upscaled(engine, generated, self.upscale, **progress))
            if upscaled is not None:
                result = upscaled
        if self.maps is not None:
            self.maps_result, self.maps_failure = _material_maps(engine, self.maps, result.image, result.seed,
                                                                 **progress)
        return result

    def _on_progress(self, event) -> None:
        self.events.put(JobEvent("progress", event))
        for listener in list(_progress_listeners):
            listener(event)

    def cancel(self) -> None:
        self.cancel_event.set()

    def describe(self) -> str:
        """One line for the status bar and panel."""
        if self.stage == "DOWNLOAD":
            return f"Downloading model: {self.step / 1e6:,.0f} / {self.total / 1e6:,.0f} MB"
        if self.stage == "DENOISE" and self.step:
            steps = f"Step {self.step}/{self.total}"
            if not self.parts:
                return steps
            if self.part_after_step:
                return f"{steps} · {self.part_label.lower()} {self.part}/{self.parts}"
            return f"{self.part_label} {self.part}/{self.parts} · {steps.lower()}"
        if self.stage == "MAPS":
            return f"maps: {self.detail} {self.step}/{self.total}"
        if self.stage == "BAKE":
            return "Baking into the UV maps…"
        if self.stage == "GEOMETRY":
            return "Preparing the views and UV maps…"
        return "Loading model…"

    def drain(self) -> list[JobEvent]:
        """Every event queued so far, without blocking; keeps step/total current."""
        drained = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event.kind == "progress":
                payload = event.payload
                self.stage, self.step, self.total = payload.stage, payload.step, payload.total
                self.part, self.parts = payload.part, payload.parts
                self.detail = getattr(payload, "detail", "")
            else:
                self.finished = True
            drained.append(event)
        return drained


def _upscaled(engine, generated, template: UpscaleRequest, **run_options):
    """``generated`` upscaled by ``template`` (its image and seed): the recipe of both, the generation's timings."""
    request = dataclasses.replace(template, image=generated.image[..., :3], seed=generated.seed)
    upscaled = engine.upscale(request, **run_options)
    recipe = dict(generated.recipe)
    recipe.update(upscaled.recipe)
    return dataclasses.replace(upscaled, recipe=recipe, timings=generated.timings,
                               ignored=[*generated.ignored, *upscaled.ignored])


def _material_maps(engine, template, image, seed: int, *, on_progress, cancel_event, previews):
    """Material Maps after a generation: (result, None), or (None, why) (``kept_on_failure``)."""
    request = dataclasses.replace(template, image=np.ascontiguousarray(np.clip(image[..., :3], 0.0, 1.0),
                                                                       dtype=np.float32), seed=int(seed) % 2**31)
    return kept_on_failure(lambda: engine.material_maps(request, on_progress=on_progress, cancel_event=cancel_event))


def kept_on_failure(make):
    """A step after the generation (upscale, material maps): (``make()``, None), or (None, why) when it failed, so
    that the generation is kept; a cancel propagates. A failure that is not the engine's own is printed with its
    traceback."""
    from ..engine import EngineError, GenerationCancelled

    try:
        return make(), None
    except GenerationCancelled:
        raise
    except Exception as error:
        if not isinstance(error, EngineError):
            traceback.print_exc()
            error = f"{type(error).__name__}: {error}"
        return None, str(error)


_current_job: GenerationJob | None = None
_progress_listeners: list[Callable[[Any], None]] = []
_workers: list[threading.Thread] = []


def busy_workers() -> list[threading.Thread]:
    """Worker threads still running, including those of cancelled runs that have not reached a step boundary yet."""
    _workers[:] = [thread for thread in _workers if thread.is_alive()]
    return list(_workers)


@contextlib.contextmanager
def progress_listener(callback: Callable[[Any], None]) -> Iterator[None]:
    """Call ``callback(ProgressEvent)`` for every step of any job run meanwhile.

    It is called on the thread that runs the job: the caller's own thread in
    background mode (the command line's progress bar), the worker otherwise,
    so a listener must not touch bpy.
    """
    _progress_listeners.append(callback)
    try:
        yield
    finally:
        _progress_listeners.remove(callback)


def current_job() -> GenerationJob | None:
    """The running generation, if any (panels read its progress)."""
    return _current_job


def set_current_job(job: GenerationJob | None) -> None:
    global _current_job
    _current_job = job
