"""What the model did while it painted: the denoising filmstrip and per-word attention maps.

An ``InsightRecorder`` is handed to ``Engine.generate(..., recorder=...)``. It attaches
to the pipeline for one run only (a wrapped scheduler ``step``, a step-end callback,
recording attention processors) and takes everything off again afterwards, so a run
without a recorder is exactly the run it always was. After the run, ``images`` holds
the sheets as ``InsightImage``s (float32 RGBA, top row first) with their recipe keys.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import sheets
from .tokens import group_words, is_word

if TYPE_CHECKING:  # torch loads with the engine, not when the add-on builds a recorder
    import torch

    from .attention import CrossAttentionRecorder

FILMSTRIP_THUMB = 256  # longest side of each frame on the contact sheet, pixels
FILMSTRIP_COLUMNS = 4  # frames per row of the contact sheet
ATTENTION_COLUMNS = 4
LATENT_SCALE = 8  # the VAE's downsampling


@dataclass
class InsightImage:
    """One sheet: ``kind`` is the recipe's ``insight`` value; ``recipe`` the keys it adds to the result's recipe."""

    kind: str
    suffix: str  # appended to the result image's name
    image: np.ndarray = field(repr=False)  # float32 (h, w, 4), top row first
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class Frame:
    """One denoising step: the clean-image estimate (x0) and the noisy latent after the step."""

    step: int  # 1-based
    timestep: int
    sigma: float  # noise level of the step's input, sqrt((1 - alpha_bar) / alpha_bar)
    predicted: torch.Tensor = field(repr=False)  # x0 latent (1, 4, h, w), CPU float32
    noisy: torch.Tensor = field(repr=False)  # latent after the step, CPU float32
    image: np.ndarray | None = field(default=None, repr=False)  # x0 decoded, float32 (H, W, 3)


def predicted_clean(scheduler: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor) -> torch.Tensor:
    """x0 from the model's prediction and the schedule (for schedulers whose step output has none).

    With alpha_bar = the cumulative signal share at ``timestep``: epsilon prediction
    x0 = (x - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar); v prediction
    x0 = sqrt(alpha_bar) x - sqrt(1 - alpha_bar) v; "sample" prediction is x0 itself.
    """
    import torch

    alpha = _alpha_bar(scheduler, timestep).to(sample.device, torch.float32)
    x, out = sample.float(), model_output.float()
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "v_prediction":
        return alpha.sqrt() * x - (1 - alpha).sqrt() * out
    if kind == "sample":
        return out
    return (x - (1 - alpha).sqrt() * out) / alpha.sqrt()


def _alpha_bar(scheduler: Any, timestep: Any) -> torch.Tensor:
    table = scheduler.alphas_cumprod
    index = int(round(float(timestep)))
    return table[min(max(index, 0), len(table) - 1)].float().cpu()


def sigma_of(scheduler: Any, timestep: Any) -> float:
    alpha = float(_alpha_bar(scheduler, timestep))
    return math.sqrt((1 - alpha) / alpha)


def prompt_words(tokenizer: Any, prompt: str) -> list[tuple[str, list[int]]]:
    """The prompt's words and their positions in the text encoder's input (start token = 0), inside the window."""
    window = int(getattr(tokenizer, "model_max_length", 77)) - 2
    pieces = tokenizer.tokenize(prompt)
    words = []
    for word in group_words(pieces):
        positions = [i + 1 for i in word.tokens if i < window]
        if positions and is_word(word.text):
            words.append((word.text, positions))
    return words


class InsightRecorder:
    """Records one generation's filmstrip and/or attention maps (``Engine.generate(recorder=...)``)."""

    def __init__(self, *, filmstrip: bool = False, attention: bool = False) -> None:
        self.filmstrip = filmstrip
        self.attention = attention
        self.frames: list[Frame] = []
        self.images: list[InsightImage] = []
        self.words: list[tuple[str, list[int]]] = []
        self.word_maps: np.ndarray | None = None  # (words, H, W) normalised to 0..1 by the largest value
        self._pending: tuple[int, float, torch.Tensor] | None = None
        self._attention: CrossAttentionRecorder | None = None

    def release(self) -> None:
        """Let go of the recorded arrays (frames, maps, sheets) once they are written."""
        self.frames, self.images, self.word_maps, self._attention, self._pending = [], [], None, None, None

    def validate(self, prompt: str) -> None:
        """Raise ``ValueError`` for a request this recorder cannot record (before anything runs)."""
        if self.attention and not any(is_word(part) for part in prompt.split()):
            raise ValueError(
                "record_attention needs a prompt with at least one word: attention maps show where each prompt "
                "word was painted; got an empty prompt."
            )

    @contextlib.contextmanager
    def attach(self, pipe: Any, kwargs: dict[str, Any], height: int, width: int) -> Iterator[None]:
        """Hook into ``pipe`` for one call with ``kwargs``; everything is undone on exit (also on errors)."""
        self.frames, self.images, self._pending = [], [], None
        scheduler = pipe.scheduler
        original_step = scheduler.step
        original_callback = kwargs.get("callback_on_step_end")
        with contextlib.ExitStack() as stack:
            if self.filmstrip:
                scheduler.step = self._wrap_step(scheduler, original_step)
                stack.callback(_restore_attribute, scheduler, "step", original_step)
                kwargs["callback_on_step_end"] = self._wrap_callback(original_callback)
                stack.callback(kwargs.__setitem__, "callback_on_step_end", original_callback)
            if self.attention:
                from .attention import CrossAttentionRecorder

                self.words = prompt_words(pipe.tokenizer, kwargs.get("prompt") or "")
                self._attention = CrossAttentionRecorder(height // LATENT_SCALE, width // LATENT_SCALE)
                stack.enter_context(self._attention.attached(pipe.unet))
            yield

    def _wrap_step(self, scheduler: Any, step: Callable[..., Any]) -> Callable[..., Any]:
        import torch

        def recording_step(model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any):
            out = step(model_output, timestep, sample, *args, **kwargs)
            parts = out if isinstance(out, tuple) else tuple(v for v in out.values())
            given = parts[1] if len(parts) > 1 and isinstance(parts[1], torch.Tensor) else None
            clean = given if given is not None else predicted_clean(scheduler, model_output, timestep, sample)
            clean = clean[:1].detach().float().cpu()
            self._pending = (int(round(float(timestep))), sigma_of(scheduler, timestep), clean)
            return out

        return recording_step

    def _wrap_callback(self, callback: Callable[..., Any] | None) -> Callable[..., Any]:
        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if self._pending is not None:
                t, sigma, clean = self._pending
                noisy = tensors["latents"][:1].detach().float().cpu()
                self.frames.append(Frame(len(self.frames) + 1, t, sigma, clean, noisy))
                self._pending = None
            return callback(pipe, step, timestep, tensors) if callback is not None else tensors

        return on_step_end

    def finish(
        self,
        result: np.ndarray,
        family: str,
        decode: Callable[[torch.Tensor], np.ndarray],
        check_cancel: Callable[[], None],
    ) -> None:
        """Build the sheets from what was recorded; ``result`` is the decoded image (H, W, 3).

        ``decode`` turns a latent into an image exactly as the result was decoded. The last
        frame *is* the result: the final latents are the last step's clean estimate.
        """
        if self.filmstrip:
            for frame in self.frames[:-1]:
                check_cancel()
                frame.image = decode(frame.predicted)
            if self.frames:
                self.frames[-1].image = result
                self.images.append(self._filmstrip_sheet(family))
        if self.attention and self._attention is not None:
            self.images.extend(self._attention_images(result))

    def _filmstrip_sheet(self, family: str) -> InsightImage:
        from .preview import latents_to_rgb

        tiles, labels = [], []
        total = len(self.frames)
        for frame in self.frames:
            assert frame.image is not None
            clean = sheets.downscale(frame.image, FILMSTRIP_THUMB)
            noisy = latents_to_rgb(frame.noisy, family)
            noisy = sheets.enlarge(noisy, *clean.shape[:2]) if noisy is not None else np.zeros_like(clean)
            tiles.append(np.concatenate([clean, noisy], axis=1))
            labels.append(f"step {frame.step}/{total}  t={frame.timestep}  sigma={frame.sigma:.2f}")
        sheet = sheets.contact_sheet(tiles, labels, FILMSTRIP_COLUMNS)
        recipe = {
            "insight": "filmstrip",
            "frames": total,
            "timesteps": [f.timestep for f in self.frames],
            "sigmas": [round(f.sigma, 6) for f in self.frames],
        }
        return InsightImage("filmstrip", "filmstrip", sheets.rgba(sheet), recipe)

    def _attention_images(self, result: np.ndarray) -> list[InsightImage]:
        assert self._attention is not None
        height, width = result.shape[:2]
        if not self.words:
            return []
        raw = self._attention.token_maps([positions for _, positions in self.words], height, width)
        scale = float(raw.max())
        self.word_maps = raw / scale if scale > 0 else raw
        out = []
        peaks = raw.reshape(len(raw), -1).max(axis=1)
        for (word, positions), heat, peak in zip(self.words, self.word_maps, peaks, strict=True):
            grey = np.repeat(heat[:, :, None], 3, axis=2)
            recipe = {"insight": "attention", "token": word, "token_positions": positions, "peak": float(peak),
                      "normalised_by": scale}
            out.append(InsightImage("attention", f"attention {word}", sheets.rgba(grey), recipe))
        tiles = [sheets.downscale(sheets.overlay(result, heat), FILMSTRIP_THUMB) for heat in self.word_maps]
        sheet = sheets.contact_sheet(tiles, [w for w, _ in self.words], ATTENTION_COLUMNS)
        recipe = {"insight": "attention", "token": "", "overlay": True, "words": ", ".join(w for w, _ in self.words),
                  "normalised_by": scale}
        out.append(InsightImage("attention", "attention overlay", sheets.rgba(sheet), recipe))
        return out


def _restore_attribute(owner: Any, name: str, original: Any) -> None:
    # The wrapper was set on the instance; dropping it brings the class's method back.
    if getattr(type(owner), name, None) is not None and getattr(original, "__self__", None) is owner:
        owner.__dict__.pop(name, None)
    else:
        setattr(owner, name, original)
