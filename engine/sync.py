"""Task: ``object_method = SYNC`` (issue 29) - every view denoised together through one latent texture.

Layout B of ``shared/notes/sync.md``: each view keeps its own latents; at every synchronised step the
views' predicted clean latents x0 (CFG already applied by the pipeline) are baked into the latent texture
(per texel, the mean of the latent pixels that see it, weighted by visibility x |cos|^k), rendered back
by nearest lookup, turned back into the model output the scheduler expects (eps, v or the sample itself,
following the scheduler's ``prediction_type``) and handed to the unchanged scheduler's ``step`` - once
per timestep for the whole batch of views. Nothing edits the latents between two steps, so multistep
histories (DPM-Solver++'s ``model_outputs``, UniPC's corrector) hold synchronised x0 by themselves and
the unsynchronised tail is the scheduler's ordinary steps.

Where alpha_t and sigma_t come from: the scheduler's own ``sigmas`` at its step index for DPM-Solver++
(also with Karras sigmas), UniPC and Euler (Euler's sample lives in sigma space: x = x_vp / alpha_t);
``alphas_cumprod[t]`` for DDIM. PNDM (extrapolates from four past outputs, one step run twice), Euler
Ancestral and LCM (noise drawn inside ``step()``) are refused by name before anything runs.

Imports the core only (no other task); torch and diffusers load lazily. The sync math runs in fp32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import view_groups
from .request import ProgressCallback, ProgressEvent

SYNC_SCHEDULERS = ("DDIM", "EULER", "DPM_SOLVER_MULTISTEP", "DPM_SOLVER_MULTISTEP_KARRAS", "UNIPC")
REFUSED_SCHEDULERS = {
    "PNDM": "its step extrapolates from its last four outputs and runs one step twice",
    "EULER_ANCESTRAL": "it draws fresh noise inside its step, per view",
    "LCM": "it draws fresh noise inside its step, per view",
}
DEFAULT_FRACTION = 0.8
DEFAULT_WEIGHT_EXPONENT = 1.0  # plain cosine (SyncMVD's paper); not yet measured against its 0 -> 6 ramp

# (step index, synchronised x0 (V, C, h, w), the x0 the scheduler's step reported) after every synchronised step
Observer = Callable[[int, Any, Any], None]


# how the add-on's panel names the schedulers SYNC can step, for the sentence below
SYNC_SCHEDULER_LABELS = "DPM++ 2M, DPM++ 2M Karras, DDIM, Euler or UniPC"


def scheduler_problem(name: str) -> str | None:
    """Why SYNC cannot step the scheduler ``name`` correctly (a sentence naming it, for the panel, the capture and
    ``check_scheduler``), or None: the one rule, asked by the add-on too (no torch)."""
    if name in SYNC_SCHEDULERS:
        return None
    why = REFUSED_SCHEDULERS.get(name, "it is not one SYNC knows")
    return f"Method Sync cannot use the scheduler {name} ({why}): choose {SYNC_SCHEDULER_LABELS}."


def check_scheduler(name: str) -> None:
    """ValueError naming ``scheduler`` for a scheduler SYNC cannot step correctly (``scheduler_problem``)."""
    problem = scheduler_problem(name)
    if problem is not None:
        raise ValueError(problem)


def synchronised_steps(steps: int, fraction: float) -> int:
    """How many of the first ``steps`` denoising steps are synchronised: round(fraction x steps), halves up."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"sync_fraction must be within 0..1; got {fraction}")
    if int(steps) < 1:
        raise ValueError(f"steps must be positive; got {steps}")
    return min(int(steps), int(math.floor(float(fraction) * int(steps) + 0.5)))


@dataclass(frozen=True)
class SyncPlan:
    """The views' correspondence as torch tensors, ready for every step."""

    texel: Any  # (V, h*w) int64 texel index into the latent texture, -1 = background
    weight: Any  # (V, h*w) float32 visibility x |cos|^k (0 on background)
    size: int  # latent texture side (the largest mesh's)
    texels: int  # texels of every mesh's latent texture together
    height: int
    width: int
    # (V, h, w, C) float32 x0 -> ((texels, C) baked values, (texels,) weight sums); None: each pixel into its texel
    bake: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    # computed once by make_plan, so that a step is a few vectorised gathers and sums (no loop over views):
    # the pixels that splat into their texel (weight > 0; flat over views), their texels and weights,
    # the weight sum and the number of such pixels per texel, and every pixel that reads a texel
    splat_pixels: np.ndarray | None = None
    splat_texels: np.ndarray | None = None
    splat_weights: np.ndarray | None = None
    splat_sums: np.ndarray | None = None
    readers: np.ndarray | None = None
    read_pixels: np.ndarray | None = None
    read_texels: np.ndarray | None = None
    read_splats: np.ndarray | None = None  # (reading pixels,) bool: the pixel splats into its texel itself

    @property
    def views(self) -> int:
        return int(self.texel.shape[0])


def make_plan(views: Sequence[Any], weight_exponent: float = DEFAULT_WEIGHT_EXPONENT, bake: Any = None) -> SyncPlan:
    """``views``: ``geometry.latent_sync.LatentView`` of one latent size and one texture size; ``bake``: see
    ``SyncPlan`` (e.g. ``geometry.latent_sync.LatentBake``, which weighs the views itself)."""
    import torch

    if not views:
        raise ValueError("views must not be empty")
    if not float(weight_exponent) >= 0.0:
        raise ValueError(f"weight_exponent must be at least 0; got {weight_exponent}")
    shape, size, texels = views[0].texel.shape, int(views[0].size), int(views[0].texels)
    for view in views:
        if view.texel.shape != shape or int(view.texels) != texels:
            raise ValueError("views must share one latent size and one latent texture size")
    texel = np.stack([np.asarray(view.texel, dtype=np.int64).reshape(-1) for view in views])
    cosine = np.stack([np.asarray(view.cosine, dtype=np.float64).reshape(-1) for view in views])
    weight = np.where(texel >= 0, np.power(np.clip(cosine, 0.0, 1.0), float(weight_exponent)), 0.0)
    weight = weight.astype(np.float32)
    flat_texel, flat_weight = texel.reshape(-1), weight.reshape(-1)
    splat = np.flatnonzero(flat_weight > 0)
    read = np.flatnonzero(flat_texel >= 0)
    return SyncPlan(texel=torch.from_numpy(texel), weight=torch.from_numpy(weight),
                    size=size, texels=texels, height=int(shape[0]), width=int(shape[1]), bake=bake,
                    splat_pixels=splat, splat_texels=flat_texel[splat], splat_weights=flat_weight[splat],
                    splat_sums=np.bincount(flat_texel[splat], weights=flat_weight[splat], minlength=texels),
                    readers=np.bincount(flat_texel[splat], minlength=texels), read_pixels=read,
                    read_texels=flat_texel[read], read_splats=flat_weight[read] > 0)


def consistent_noise(plan: SyncPlan, channels: int, generator: Any) -> Any:
    """(V, C, h, w) float32 initial noise: N(0, 1) per texel of the latent texture, rendered into every view
    by nearest lookup (the same surface point starts from the same noise in every view); background pixels
    draw their own. The texture is drawn first, then the background, from ``generator`` (CPU)."""
    import torch

    texture = torch.randn((channels, plan.texels), generator=generator, dtype=torch.float32)
    noise = torch.randn((plan.views, channels, plan.height * plan.width), generator=generator, dtype=torch.float32)
    for index in range(plan.views):
        seen = plan.texel[index] >= 0
        noise[index][:, seen] = texture[:, plan.texel[index][seen]]
    return noise.reshape(plan.views, channels, plan.height, plan.width)


def synchronise(x0: Any, plan: SyncPlan) -> Any:
    """The views' ``x0`` (V, C, h, w) baked into the latent texture (weighted mean per texel over every view
    that sees it: ``plan.bake`` where set and it saw the texel, else the mean of the latent pixels that land in
    the texel) and rendered back by nearest lookup; pixels whose texel no weighted view saw keep their x0.
    numpy on the CPU with the plan's index arrays (sums in fp64), returned on ``x0``'s device in fp32."""
    import torch

    views, channels = int(x0.shape[0]), int(x0.shape[1])
    if views != plan.views or tuple(x0.shape[2:]) != (plan.height, plan.width):
        raise ValueError(f"x0 must be ({plan.views}, C, {plan.height}, {plan.width}); got {tuple(x0.shape)}")
    values = x0.detach().to("cpu", torch.float32).numpy()
    planes = np.ascontiguousarray(values.transpose(1, 0, 2, 3)).reshape(channels, -1)  # (C, V*h*w)
    weight_sums = plan.splat_sums
    divisor = np.where(weight_sums > 0, weight_sums, 1.0)
    texture = np.empty((channels, plan.texels), dtype=np.float32)
    for channel in range(channels):
        total = np.bincount(plan.splat_texels, weights=planes[channel, plan.splat_pixels] * plan.splat_weights,
                            minlength=plan.texels)
        texture[channel] = total / divisor
    readers = plan.readers
    if plan.bake is not None:  # the gathered texels; those it misses keep the pixels' own (splatted) mean
        colour, gathered = plan.bake(values.transpose(0, 2, 3, 1))
        if colour.shape != (plan.texels, channels) or gathered.shape != (plan.texels,):
            raise ValueError(f"the bake must give ({plan.texels}, {channels}) values and ({plan.texels},) weights")
        seen = np.asarray(gathered) > 0
        texture[:, seen] = np.asarray(colour, dtype=np.float32).T[:, seen]
        weight_sums = np.where(seen, 1.0, weight_sums)
        readers = np.where(seen, 2, readers)
    # a texel only this pixel sees keeps the pixel's own x0 bit for bit (w x0 / w may round)
    texel = plan.read_texels
    count = readers[texel]
    shared = (count > 1) | ((count == 1) & ~plan.read_splats)
    reads = shared & (weight_sums[texel] > 0)
    result = planes.copy()
    result[:, plan.read_pixels[reads]] = texture[:, texel[reads]]
    synced = np.ascontiguousarray(result.reshape(channels, views, plan.height, plan.width).transpose(1, 0, 2, 3))
    return torch.from_numpy(synced).to(x0.device)


class SynchronisedScheduler:
    """Stands in for the pipeline's scheduler: every attribute is the real scheduler's; ``step`` synchronises
    x0 for the first ``synced`` steps, then passes the model output through unchanged."""

    def __init__(self, scheduler: Any, plan: SyncPlan, synced: int, observer: Observer | None = None) -> None:
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
        from diffusers import UniPCMultistepScheduler

        kinds = {DDIMScheduler: "alphas", EulerDiscreteScheduler: "sigma_space",
                 DPMSolverMultistepScheduler: "sigmas", UniPCMultistepScheduler: "sigmas"}
        kind = kinds.get(type(scheduler))
        if kind is None:
            raise ValueError(f"scheduler {type(scheduler).__name__} cannot run Whole Object SYNC; "
                             f"choose one of {', '.join(SYNC_SCHEDULERS)}.")
        config = scheduler.config
        if kind == "sigmas" and getattr(config, "algorithm_type", "dpmsolver++") not in ("dpmsolver++",):
            raise ValueError(f"scheduler {type(scheduler).__name__} with algorithm_type {config.algorithm_type} "
                             "cannot run Whole Object SYNC; only dpmsolver++ (the add-on's).")
        if getattr(config, "thresholding", False):  # per-view dynamic thresholds would part the views again
            raise ValueError("scheduler: SYNC needs thresholding off (the SD / SDXL default).")
        object.__setattr__(self, "_inner", scheduler)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_synced", int(synced))
        object.__setattr__(self, "_observer", observer)
        object.__setattr__(self, "_calls", 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_inner"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    @property
    def inner(self) -> Any:
        return self._inner

    @property
    def calls(self) -> int:
        """Steps taken so far: the index of the step whose model output is being computed."""
        return self._calls

    def _alpha_sigma(self, timestep: Any) -> tuple[float, float]:
        """(alpha_t, sigma_t) of the VP form x_t = alpha_t x0 + sigma_t eps at this step."""
        inner = self._inner
        if self._kind == "alphas":
            cumulative = float(inner.alphas_cumprod[int(timestep)])
            return math.sqrt(cumulative), math.sqrt(1.0 - cumulative)
        index = inner.step_index
        if index is None:
            index = inner.begin_index if inner.begin_index is not None else inner.index_for_timestep(timestep)
        sigma = float(inner.sigmas[index])
        alpha = 1.0 / math.sqrt(sigma * sigma + 1.0)
        return alpha, sigma * alpha

    def step(self, model_output: Any, timestep: Any, sample: Any, *args: Any, **kwargs: Any) -> Any:
        calls = self._calls
        object.__setattr__(self, "_calls", calls + 1)
        if calls >= self._synced:
            return self._inner.step(model_output, timestep, sample, *args, **kwargs)
        import torch

        alpha, sigma = self._alpha_sigma(timestep)
        prediction = self._inner.config.prediction_type
        x = sample.to(torch.float32)
        x_vp = x * alpha if self._kind == "sigma_space" else x
        out = model_output.to(torch.float32)
        if prediction == "epsilon":
            x0 = (x_vp - sigma * out) / alpha
        elif prediction == "v_prediction":
            x0 = alpha * x_vp - sigma * out
        elif prediction == "sample":
            x0 = out
        else:
            raise ValueError(f"prediction_type {prediction!r} cannot run Whole Object SYNC")
        synced = synchronise(x0, self._plan)
        if prediction == "epsilon":
            converted = (x_vp - alpha * synced) / sigma
        elif prediction == "v_prediction":
            converted = (alpha * x_vp - synced) / sigma
        else:
            converted = synced
        return_dict = kwargs.pop("return_dict", True)
        result = self._inner.step(converted.to(model_output.dtype), timestep, sample, *args, return_dict=True,
                                  **kwargs)
        if self._observer is not None:
            reported = getattr(result, "pred_original_sample", None)
            if reported is None:
                reported = self._inner.model_outputs[-1]
            config = self._inner.config
            if getattr(config, "clip_sample", False):  # DDIM clips x0 itself (its eps direction stays unclipped)
                synced = synced.clamp(-config.clip_sample_range, config.clip_sample_range)
            self._observer(calls, synced, reported)
        return result if return_dict else (result.prev_sample,)


@contextlib.contextmanager
def synchronised(pipe: Any, plan: SyncPlan, synced: int, observer: Observer | None = None, attention: str = "NONE",
                 steps: int = 0) -> Iterator[Any]:
    """``pipe``'s scheduler stands in synchronised for the block and, unless ``attention`` is NONE, its UNet's
    self-attention looks across the views (``sync_attention.py``; ``steps``: the run's, for the reference
    window); the real scheduler and the very same attention processors are back afterwards (also after an
    error). Yields the stand-in."""
    scheduler = pipe.scheduler
    stand_in = SynchronisedScheduler(scheduler, plan, synced, observer)
    attending = contextlib.nullcontext()
    if attention != "NONE":
        from .sync_attention import CrossViews, cross_view_attention, neighbour_views, reference_steps

        views = CrossViews(neighbour_views(plan.texel.numpy()), attention, reference_steps(steps),
                           step=lambda: stand_in.calls,
                           blocks=lambda: 2 if getattr(pipe, "do_classifier_free_guidance", False) else 1)
        attending = cross_view_attention(pipe.unet, views)
    # past DiffusionPipeline.__setattr__: the pipeline's config keeps naming the real scheduler
    object.__setattr__(pipe, "scheduler", stand_in)
    try:
        with attending:
            yield stand_in
    finally:
        object.__setattr__(pipe, "scheduler", scheduler)


class SyncViews:
    """The views of one SYNC run, for ``generation.generate(views=...)`` (``Engine.generate_sync``): it turns the
    one-view call into the batch of views (a prompt per view, the consistent noise from the run's generator,
    a control image per view), synchronises the call's steps and receives every decoded view (``images``)."""

    def __init__(self, views: Sequence[Any], *, fraction: float = DEFAULT_FRACTION,
                 weight_exponent: float = DEFAULT_WEIGHT_EXPONENT, control_images: Sequence[np.ndarray] | None = None,
                 observer: Observer | None = None, bake: Any = None, attention: str = "NONE",
                 on_progress: ProgressCallback | None = None, cancel_event: Any = None) -> None:
        from .sync_attention import check_mode

        check_mode(attention)
        self.attention = attention
        self.plan = make_plan(views, weight_exponent, bake)
        self.fraction = float(fraction)
        self.weight_exponent = float(weight_exponent)
        self.control_images = None if control_images is None else [np.asarray(i, np.float32) for i in control_images]
        if self.control_images is not None and len(self.control_images) != self.plan.views:
            raise ValueError(f"control_images must be one per view ({self.plan.views}); got {len(control_images)}")
        self.observer = observer
        self.on_progress, self.cancel_event = on_progress, cancel_event
        self.steps = 0
        self.groups = [range(self.plan.views)]  # the views of each UNet / ControlNet forward (``fit``)
        self.memory: view_groups.ViewMemory | None = None  # one view's estimate (``fit``)
        self.images: np.ndarray | None = None  # (V, h, w, 3) after the run
        self._step = 0

    def check(self, width: int, height: int, steps: int) -> None:
        """ValueError naming what does not fit the request, before anything runs."""
        synchronised_steps(steps, self.fraction)
        if (height // 8, width // 8) != (self.plan.height, self.plan.width):
            raise ValueError(f"views must be at the latent size of {width}x{height} "
                             f"({width // 8}x{height // 8}); got {self.plan.width}x{self.plan.height}")
        self.steps = int(steps)

    def arguments(self, pipe: Any, kwargs: dict[str, Any], *, weight_bytes: int = 0,
                  score_matrix: bool = False) -> dict[str, Any]:
        """The call's arguments for every view; first the view groups fitted to the device's memory (``fit``)."""
        views = self.plan.views
        kwargs = dict(kwargs)
        self.fit(pipe, float(kwargs.get("guidance_scale", 0.0)) > 1.0, weight_bytes, score_matrix)
        kwargs["prompt"] = [kwargs["prompt"]] * views
        if kwargs.get("negative_prompt") is not None:
            kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * views
        noise = consistent_noise(self.plan, int(pipe.unet.config.in_channels), kwargs["generator"])
        kwargs["latents"] = noise.to(pipe.unet.device, pipe.unet.dtype)
        if self.control_images is not None and "image" in kwargs:
            kwargs["image"] = np.ascontiguousarray(np.stack(self.control_images))
        return kwargs

    def fit(self, pipe: Any, guided: bool, weight_bytes: int, score_matrix: bool) -> None:
        """``groups``: the views in the fewest groups whose UNet batch fits beside every view's share
        (``view_groups``); ``view_groups.ViewsDoNotFitError`` naming the most views that fit when one view does
        not. ``weight_bytes``: the loaded model's weights on the device (the ControlNet's are added here)."""
        from . import devices

        unet = pipe.unet
        controlnet = getattr(pipe, "controlnet", None)
        config = unet.config
        itemsize = int(unet.dtype.itemsize)
        self.memory = memory = view_groups.estimate(
            config, height=self.plan.height, width=self.plan.width, itemsize=itemsize,
            samples_per_view=2 if guided else 1, controlnet=controlnet is not None,
            control_values=3 * 64 * self.plan.height * self.plan.width if controlnet is not None else 0,
            prompt_values=77 * int(config.cross_attention_dim), score_matrix=score_matrix)
        if controlnet is not None:
            weight_bytes += sum(p.numel() * p.element_size() for p in controlnet.parameters())
        # where the UNet runs: under CPU offload the UNet waits on the CPU, its forward runs on the GPU
        budget = devices.memory_budget(getattr(pipe, "_execution_device", unet.device))
        available = None if budget is None else int(view_groups.MEMORY_SHARE * max(budget - weight_bytes, 0))
        per_group = view_groups.views_per_group(self.plan.views, memory, available)
        if self.attention != "NONE" and per_group < self.plan.views:
            view_groups.refuse_split_attention(self.plan.views, memory, available)
        self.groups = view_groups.view_groups(self.plan.views, per_group)

    def progress(self, on_progress: ProgressCallback | None) -> ProgressCallback | None:
        """``on_progress`` with every event marked as the last view group of its step (when there are groups)."""
        if on_progress is None:
            return None

        def report(event: ProgressEvent) -> None:
            if len(self.groups) > 1 and event.stage == "DENOISE":
                event = ProgressEvent(event.step, event.total, event.preview, event.stage, len(self.groups),
                                      len(self.groups))
            on_progress(event)

        return report

    def _before_group(self, unet: Any, module: Any, index: int) -> None:
        """Before each view group's forward: the artist sees "step i/n · view group g/G" (the UNet's groups)."""
        if module is not unet:
            return
        if index == 0:
            self._step += 1
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(min(self._step, self.steps), self.steps, part=index + 1,
                                           parts=len(self.groups)))

    @contextlib.contextmanager
    def around(self, pipe: Any) -> Iterator[None]:
        """The scheduler synchronised and the UNet / ControlNet run in ``groups`` for the pipeline call (entered
        with the block, so a failure while entering takes off what was already put on)."""
        unet = pipe.unet
        modules = [unet] + ([pipe.controlnet] if getattr(pipe, "controlnet", None) is not None else [])
        self._step = 0
        with synchronised(pipe, self.plan, synchronised_steps(self.steps, self.fraction), self.observer,
                          self.attention, self.steps), \
                view_groups.grouped_forward(modules, self.plan.views, self.groups, cancel_event=self.cancel_event,
                                            before_group=lambda module, index: self._before_group(unet, module, index)):
            yield

    def recipe(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "weight_exponent": self.weight_exponent,
                "latent_texture_size": self.plan.size, "attention": self.attention}


def run_views(pipe: Any, views: Sequence[Any], *, prompt: str, generator: Any, steps: int, guidance_scale: float,
              negative_prompt: str | None = None, weight_bytes: int = 0, call_arguments: dict[str, Any] | None = None,
              **sync_views: Any) -> tuple[Any, SyncViews]:
    """SYNC on a diffusers pipeline built outside the engine (its scheduler already set), through the same
    ``SyncViews`` path as ``generation.generate``: ``check``, ``arguments`` (consistent noise, view groups that fit
    beside ``weight_bytes``) and ``around`` (synchronised scheduler, grouped forward, cross-view attention).
    For tests and benchmarks that study the loop on a bare pipeline. ``sync_views``: ``SyncViews``' keywords;
    ``call_arguments``: more arguments of the pipeline call (``callback_on_step_end``). Returns the (V, C, h, w)
    final latents and the ``SyncViews`` (its plan and groups)."""
    batch = SyncViews(views, **sync_views)
    height, width = batch.plan.height * 8, batch.plan.width * 8
    batch.check(width, height, steps)
    kwargs: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative_prompt, "num_inference_steps": steps,
                              "guidance_scale": guidance_scale, "generator": generator, "output_type": "latent",
                              "height": height, "width": width, **(call_arguments or {})}
    if batch.control_images is not None:
        kwargs["image"] = None  # the request's one control image; SyncViews puts one per view
    kwargs = batch.arguments(pipe, kwargs, weight_bytes=weight_bytes)
    with batch.around(pipe):
        return pipe(**kwargs).images, batch

