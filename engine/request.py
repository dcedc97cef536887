"""The engine's typed contract: what a generation asks for and what it gives back.

Imports only numpy and the standard library, so the add-on (and its UI) can use
these names without paying for torch.
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODES = ("TXT2IMG", "IMG2IMG", "INPAINT")
CONTROLS = ("NONE", "DEPTH", "NORMAL", "TILE")  # TILE: the upscaler conditions each tile on itself
SCHEDULERS = (
    "DPM_SOLVER_MULTISTEP",
    "DPM_SOLVER_MULTISTEP_KARRAS",
    "DDIM",
    "EULER",
    "EULER_ANCESTRAL",
    "PNDM",
    "LCM",
    "UNIPC",
)
SEAMLESS_AXES = ("NONE", "X", "Y", "BOTH")
DEVICES = ("AUTO", "CUDA", "MPS", "CPU")
PRECISIONS = ("AUTO", "FP16", "BF16", "FP32")
VAE_TILING = ("AUTO", "ON", "OFF")
CHANNELS_LAST = ("AUTO", "ON", "OFF")
VAE_PRECISIONS = ("AUTO", "FP32")
PROGRESS_STAGES = ("DOWNLOAD", "DENOISE")

MIN_SIZE, MAX_SIZE = 64, 4096  # pixels, multiples of 8 (the VAE downsamples by 8)
MAX_STEPS = 1000  # the schedulers are trained on 1000 timesteps
MAX_GUIDANCE = 30.0
MAX_SEED = 2**31 - 1  # Blender's IntProperty is int32
MAX_CONTROL_STRENGTH = 2.0
MAX_LORA_WEIGHT = 2.0
MAX_MASK_BLUR = 256  # pixels
# A mask whose brightest pixel is below this repaints nothing visible: refused as empty.
EMPTY_MASK_THRESHOLD = 1.0 / 255.0


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to apply on top of the model.

    Args:
        source: a Hugging Face repo id (``org/name``, its ``*.safetensors`` LoRA file) or a local
            ``.safetensors`` file (``.ckpt/.pt/.bin`` only with ``EngineOptions.allow_pickle``).
        weight: how strongly it applies, -2..2 (1 = as trained, 0 = no effect, negative = the opposite).
    """

    source: str
    weight: float = 1.0

    def validate(self, name: str = "loras") -> None:
        """Raise ``ValueError`` naming ``name[i].source``/``.weight`` when bad."""
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError(f"{name}.source must be a LoRA .safetensors file or a Hugging Face repo id; got nothing.")
        weight = self.weight
        if not _is_real(weight) or math.isnan(weight) or not -MAX_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
            raise ValueError(
                f"{name}.weight must be a number from {-MAX_LORA_WEIGHT:g} to {MAX_LORA_WEIGHT:g}; got {weight!r}."
            )


@dataclass(frozen=True)
class ReferenceSpec:
    """An image prompt (IP-Adapter) that runs beside the text prompt.

    Args:
        image: the reference picture, float32 ``(h, w, 3)`` display-referred sRGB in 0..1, top row
            first; any size (the adapter's image encoder resizes it).
        strength: the adapter scale in [0, 1]; 0 = exactly as without a reference.
        model: the IP-Adapter: a ``.safetensors`` file, a folder or ``repo_id/subfolder/weight_name``;
            "" = the default for the loaded model's family.
    """

    image: np.ndarray = field(repr=False)
    strength: float = 0.6
    model: str = ""

    def validate(self, name: str = "reference") -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"{name}.image must be a float32 array of shape (h, w, 3) in 0..1; got {shape}.")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"{name}.image has no pixels (shape {image.shape}).")
        if not np.isfinite(image).all() or float(image.min()) < 0.0 or float(image.max()) > 1.0:
            raise ValueError(f"{name}.image must hold finite values in 0..1 (display-referred sRGB).")
        strength = self.strength
        if not _is_real(strength) or math.isnan(strength) or not 0 <= strength <= 1:
            raise ValueError(f"{name}.strength must be a number from 0 to 1; got {strength!r}.")
        if not isinstance(self.model, str):
            raise ValueError(f"{name}.model must be an IP-Adapter file, folder or repo id, or \"\" for the default.")

    def not_applied(self) -> dict[str, Any]:
        """The recipe's ``reference`` of a run that took none (strength 0, the x4 upscaler, SD 2 depth)."""
        return {"model": self.model, "strength": float(self.strength), "applied": False}


@dataclass
class GenerationRequest:
    """Everything one generation needs. ``validate()`` checks every field.

    Args:
        prompt: what to generate.
        model: a Hugging Face repo id (``org/name``), a local diffusers folder
            (with ``model_index.json``) or a single-file ``.safetensors`` checkpoint.
        negative_prompt: what to steer away from ("" = the model's default).
        mode: ``TXT2IMG``, ``IMG2IMG`` or ``INPAINT`` (repaint ``init_image`` where ``mask_image`` is white).
        init_image: IMG2IMG/INPAINT input, float32 ``(height, width, 3|4)`` in 0..1,
            display-referred sRGB, top row first; alpha is ignored.
        strength: IMG2IMG/INPAINT denoising strength in (0, 1]; 1 ignores the input (under the mask).
        width, height: output size in pixels, multiples of 8 from 64 to 4096.
        steps: denoising steps, 1..1000.
        guidance_scale: classifier-free guidance in [0, 30]; <= 1 runs no
            unconditional pass (few-step / turbo / LCM models).
        scheduler: one of ``SCHEDULERS``.
        seed: 0..2**31-1, or None for a random one (the result says which).
        seamless: tileable output along ``X``, ``Y``, ``BOTH`` or ``NONE``.
        mask_image: INPAINT mask, float32 ``(height, width)`` in 0..1, top row first: 1 (white) =
            repaint, 0 (black) = keep exactly. The caller resizes it to the request's size first.
            An empty (all black) mask is refused. Pixels where the (blurred) mask is 0 come back
            bit-identical to ``init_image``.
        mask_blur: INPAINT feather in pixels (>= 0): the mask's edge is blurred by a Gaussian of this
            radius (sigma = mask_blur / 2) before the result is blended over ``init_image``.
        control: geometry conditioning: ``NONE``, ``DEPTH`` or ``NORMAL`` (a ControlNet, or for an SD-2
            depth model its own depth input).
        control_image: float32 ``(height, width, 3)`` in 0..1, top row first, encoded as the ControlNet
            expects (``engine.control``: ``encode_depth``, ``encode_normals`` and their conventions).
        control_model: the ControlNet: HF repo id, diffusers folder or ``.safetensors`` file; "" = the
            default for ``control`` and the model's family (``engine.control.DEFAULT_CONTROL_MODELS``).
        control_strength: ControlNet conditioning scale in [0, 2]; 0 = exactly as without control.
        loras: LoRAs applied on top of the model (``LoraSpec``), in order; each source at most once.
        reference: an image prompt (``ReferenceSpec``, IP-Adapter) beside the text prompt; None = off.
    """

    prompt: str
    model: str
    negative_prompt: str = ""
    mode: str = "TXT2IMG"
    init_image: np.ndarray | None = field(default=None, repr=False)
    strength: float = 0.6
    width: int = 512
    height: int = 512
    steps: int = 25
    guidance_scale: float = 7.5
    scheduler: str = "DPM_SOLVER_MULTISTEP"
    seed: int | None = None
    seamless: str = "NONE"
    mask_image: np.ndarray | None = field(default=None, repr=False)
    mask_blur: int = 0
    control: str = "NONE"
    control_image: np.ndarray | None = field(default=None, repr=False)
    control_model: str = ""
    control_strength: float = 1.0
    loras: tuple[LoraSpec, ...] = ()
    reference: ReferenceSpec | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what it accepts."""
        for name in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string; got {type(getattr(self, name)).__name__}.")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(
                "model must be a Hugging Face repo id, a diffusers folder or a .safetensors file; got nothing."
            )
        _choice("mode", self.mode, MODES)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or not MIN_SIZE <= value <= MAX_SIZE or value % 8:
                raise ValueError(f"{name} must be a multiple of 8 from {MIN_SIZE} to {MAX_SIZE} pixels; got {value!r}.")
        if not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be an integer from 1 to {MAX_STEPS}; got {self.steps!r}.")
        if (
            not _is_real(self.guidance_scale)
            or math.isnan(self.guidance_scale)
            or not 0 <= self.guidance_scale <= MAX_GUIDANCE
        ):
            raise ValueError(
                f"guidance_scale must be a number from 0 to {MAX_GUIDANCE:g}; got {self.guidance_scale!r}."
            )
        if not _is_real(self.strength) or math.isnan(self.strength) or not 0 < self.strength <= 1:
            raise ValueError(f"strength must be a number in (0, 1] (above 0, at most 1); got {self.strength!r}.")
        _choice("scheduler", self.scheduler, SCHEDULERS)
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED):
            raise ValueError(
                f"seed must be an integer from 0 to {MAX_SEED}, or None for a random seed; got {self.seed!r}."
            )
        _choice("seamless", self.seamless, SEAMLESS_AXES)
        if self.mode in ("IMG2IMG", "INPAINT"):
            if int(self.steps * self.strength) < 1:
                raise ValueError(
                    f"strength x steps must be at least 1 for {self.mode} (it runs int(steps x strength) denoising "
                    f"steps); got strength {self.strength!r} with {self.steps} steps."
                )
            self._validate_init_image()
        if not _is_int(self.mask_blur) or not 0 <= self.mask_blur <= MAX_MASK_BLUR:
            raise ValueError(f"mask_blur must be an integer from 0 to {MAX_MASK_BLUR} pixels; got {self.mask_blur!r}.")
        if self.mode == "INPAINT":
            self._validate_mask()
        self._validate_control()
        self._validate_loras()
        if self.reference is not None:
            if not isinstance(self.reference, ReferenceSpec):
                raise ValueError(f"reference must be a ReferenceSpec or None; got {type(self.reference).__name__}.")
            self.reference.validate()

    def _validate_init_image(self) -> None:
        _check_image("init_image", self.init_image, self.height, self.width, (3, 4), f"for {self.mode}")

    def _validate_mask(self) -> None:
        _check_image("mask_image", self.mask_image, self.height, self.width, None, "for INPAINT")
        assert self.mask_image is not None
        if float(self.mask_image.max()) < EMPTY_MASK_THRESHOLD:
            raise ValueError(
                "mask_image is empty (all black), so there is nothing to repaint; paint white where the image "
                "should change, or use IMG2IMG to change all of it."
            )

    def _validate_control(self) -> None:
        _choice("control", self.control, CONTROLS)
        if not isinstance(self.control_model, str):
            raise ValueError(
                f"control_model must be a ControlNet repo id, folder or .safetensors file, or \"\" for the default; "
                f"got {type(self.control_model).__name__}."
            )
        strength = self.control_strength
        if not _is_real(strength) or math.isnan(strength) or not 0 <= strength <= MAX_CONTROL_STRENGTH:
            raise ValueError(f"control_strength must be a number from 0 to {MAX_CONTROL_STRENGTH:g}; got {strength!r}.")
        if self.control != "NONE":
            _check_image("control_image", self.control_image, self.height, self.width, (3,), f"for control {self.control}")

    def _validate_loras(self) -> None:
        if not isinstance(self.loras, (tuple, list)):
            raise ValueError(f"loras must be a tuple of LoraSpec; got {type(self.loras).__name__}.")
        seen: set[str] = set()
        for i, lora in enumerate(self.loras):
            if not isinstance(lora, LoraSpec):
                raise ValueError(f"loras[{i}] must be a LoraSpec(source, weight); got {type(lora).__name__}.")
            lora.validate(f"loras[{i}]")
            if lora.source.strip() in seen:
                raise ValueError(f"loras[{i}].source {lora.source!r} is listed twice; give each LoRA once.")
            seen.add(lora.source.strip())


def _check_image(
    name: str, image: Any, height: int, width: int, channels: tuple[int, ...] | None, purpose: str
) -> None:
    """``image`` must be float32 ``(height, width[, c in channels])`` with finite values in 0..1."""
    if channels is None:
        expected = f"a float32 array of shape ({height}, {width}) with values in 0..1"
    else:
        shown = " or ".join(str(c) for c in channels)
        expected = f"a float32 array of shape ({height}, {width}, {shown}) with values in 0..1"
    if image is None:
        raise ValueError(f"{name} is required {purpose}: {expected}.")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be {expected}; got {type(image).__name__}.")
    if image.dtype != np.float32:
        raise ValueError(f"{name} must be {expected}; got dtype {image.dtype}.")
    if channels is None:
        good_shape = image.shape == (height, width)
    else:
        good_shape = image.ndim == 3 and image.shape[:2] == (height, width) and image.shape[2] in channels
    if not good_shape:
        raise ValueError(f"{name} must be {expected}; got shape {image.shape}.")
    values = image[..., :3] if channels is not None else image
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be {expected}; it contains NaN or infinite values.")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} must be {expected} (display-referred, not scene-linear HDR); got values from {low:g} to {high:g}."
        )


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs; changing any of these replaces the shared engine (see ``get_engine``).

    Args:
        device: ``AUTO`` (CUDA, else MPS, else CPU), ``CUDA``, ``MPS`` or ``CPU``.
        precision: ``AUTO`` (CUDA: bf16 where supported else fp16; MPS: fp16; CPU: bf16 where
            it has native bf16, AVX512-BF16/AMX, else fp32), ``FP16``, ``BF16`` or ``FP32``.
            Pixels from the same request are bit-identical only at the same dtype on the same
            kind of CPU (instruction set) with the same torch; ``FP32`` is the portable choice.
        cache_dir: Hugging Face download cache folder (None = the hub's default).
        read_cache_dirs: Hugging Face cache folders a repo id is looked up in, in order, before
            anything is downloaded (read-only, offline); ``cache_dir`` is looked in last when not
            among them. None: ``cache_dir``, then the standard cache (``HF_HUB_CACHE``).
        offline: never touch the network; models must already be cached or local.
        allow_pickle: load ``.ckpt/.bin/.pt/.pth`` weights (they can run arbitrary code).
        attention_slicing: compute attention in slices (less memory, slower).
        cpu_offload: keep only the running sub-model on the GPU (small GPUs; CUDA only).
        vae_tiling: ``AUTO`` (on only when the decode would not fit in memory, see
            ``Engine.needs_vae_tiling``), ``ON`` or ``OFF``.
        channels_last: the UNet and VAE in the channels-last memory layout. ``AUTO``: on the
            CPU (measured faster there for the VAE, see bench/), off on GPUs (not measured);
            ``ON`` or ``OFF`` force it.
        torch_compile: compile the UNet with ``torch.compile`` (opt-in: the first generation
            at each new size pays the compile time, reported in ``GenerationResult.timings``;
            on the CPU with weight freezing, see ``compiling.py``).
        pack_weights: on an x86 CPU, pack the convolution weights (and in bf16 the linear ones)
            into oneDNN's layout once instead of at every call (``packed_weights.py``): a UNet
            step ~1.4x faster; fp32 pixels bit-identical with ``channels_last``, bf16 within
            one bf16 rounding step in some layers; one more copy of those weights in memory
            (only packed where the RAM holds it; the UNet and ControlNets). Not with
            ``torch_compile`` (its weight freezing packs them itself); no effect on GPUs.
        compile_cache_dir: where compiled code is kept between runs (the add-on passes its user
            folder), so the compile is paid once per model architecture, size, dtype and torch
            version rather than at every start; None = torch's default (a temp folder).
        vae_precision: ``AUTO`` decodes in the engine's precision and, when a half-precision
            decode overflows (NaN/inf), decodes again in fp32 and keeps doing so for that
            model; ``FP32`` always decodes in fp32.
    """

    device: str = "AUTO"
    precision: str = "AUTO"
    cache_dir: str | None = None
    read_cache_dirs: tuple[str, ...] | None = None
    offline: bool = False
    allow_pickle: bool = False
    attention_slicing: bool = False
    cpu_offload: bool = False
    vae_tiling: str = "AUTO"
    channels_last: str = "AUTO"
    torch_compile: bool = False
    pack_weights: bool = True
    vae_precision: str = "AUTO"
    compile_cache_dir: str | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option and what it accepts."""
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("vae_tiling", self.vae_tiling, VAE_TILING)
        _choice("channels_last", self.channels_last, CHANNELS_LAST)
        _choice("vae_precision", self.vae_precision, VAE_PRECISIONS)
        for name in ("torch_compile", "pack_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")
        for name in ("cache_dir", "compile_cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a folder path or None; got {type(value).__name__}.")
        if self.read_cache_dirs is not None and not (
            isinstance(self.read_cache_dirs, tuple) and all(isinstance(d, str) for d in self.read_cache_dirs)
        ):
            raise ValueError(f"read_cache_dirs must be a tuple of folder paths or None; got {self.read_cache_dirs!r}.")


@dataclass
class ProgressEvent:
    """One progress report.

    ``stage == "DENOISE"``: ``step`` denoising steps of ``total`` are done (1-based)
    and ``preview`` is a cheap float32 ``(h, w, 3)`` RGB approximation of the
    current latents (latent resolution, top row first, 0..1).
    ``stage == "DOWNLOAD"``: ``step`` bytes of ``total`` are downloaded; no preview.
    ``stage == "MAPS"``: material maps (``Engine.material_maps``): ``step`` denoising steps of ``total`` of the
    Marigold run ``part`` of ``parts`` are done; ``detail`` names the maps that run makes (``"normal"``,
    ``"albedo, roughness, metallic"``): shown as "maps: normal 1/4"; no preview.
    ``part``/``parts``: which generation of a larger run this is (tile i of n), 0/0 for a single one.
    """

    step: int
    total: int
    preview: np.ndarray | None = field(default=None, repr=False)
    stage: str = "DENOISE"
    part: int = 0  # a run made of several generations (upscale tiles, object views): this one's number, 1-based
    parts: int = 0  # ... of how many; 0 = a single generation
    detail: str = ""  # stage MAPS: the maps this part makes


ProgressCallback = Callable[[ProgressEvent], None]


def seed_or_random(seed: int | None) -> int:
    """``seed``, or a random one for ``None`` (the result carries the seed used)."""
    return int(seed) if seed is not None else secrets.randbelow(MAX_SEED + 1)


@dataclass
class GenerationResult:
    """The image, the seed that made it and the full recipe to make it again.

    ``image`` is float32 ``(height, width, 4)`` RGBA (alpha 1), top row first,
    display-referred sRGB in 0..1. ``recipe`` is JSON-safe.

    ``timings`` (seconds) says where the time went: ``load`` (0 when the model was
    in memory), ``encode_prompt`` (0 when the prompt's embeddings were cached),
    ``reference`` (only with a reference image: its IP-Adapter loaded into the model and its picture
    encoded; about 0 when both were in memory), ``before_first_step`` (the rest of the set-up before the first UNet call),
    ``first_step`` (includes compiling with ``torch_compile``), ``denoise`` (all
    steps), ``decode`` (VAE) and ``total``.

    ``ignored``: one sentence per setting that had no effect on the loaded model (a negative
    prompt on an LCM pipeline or without guidance, guidance on a model that does not use it)
    or that the model is not made for (guidance above 1 on a few-step model); the caller
    tells the artist.
    """

    image: np.ndarray = field(repr=False)
    seed: int
    recipe: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


@dataclass
class LoadedModelInfo:
    """What is in memory: the resolved source, its family and where/how it runs.

    ``files`` is the folder or file the weights were read from (for a repo id: the cached snapshot) and
    ``origin`` how it was found: ``FOLDER``, ``SINGLE_FILE``, ``CACHE`` (a repo id found in ``cache_dir``,
    the Hugging Face cache folder holding it) or ``DOWNLOAD`` (downloaded into ``cache_dir`` just now).
    ``few_step``: distilled for a handful of steps at guidance 0-1 (LCM, turbo, lightning).
    ``negative_prompt``: its pipeline takes a negative prompt (LCM pipelines do not).
    """

    source: str
    family: str
    device: str
    dtype: str
    files: str = ""
    origin: str = ""
    cache_dir: str | None = None
    few_step: bool = False
    negative_prompt: bool = True
    prediction_type: str = "epsilon"
