"""Per-word cross-attention heat maps (the DAAM method: Tang et al. 2023, "What the DAAM:
Interpreting Stable Diffusion Using Cross Attention", ACL 2023, arXiv:2210.04885).

Every cross-attention layer of the UNet computes, for each latent pixel, how much it
attends to each prompt token (softmax of query x key). We record those probabilities for
the conditional (prompt) half of the batch, average them over heads, over the layers at
the mid resolutions (1/2 and 1/4 of the latent; all layers where a model has none there)
and over the steps, upsample each resolution's mean to the image and average those,
weighted by how many calls each resolution had.

Recording never changes the image: the recording processor wraps each layer's own
processor, computes the probabilities beside it from the same inputs and returns the
original processor's output untouched (with an IP-Adapter loaded: the text part of its (text, image)
context). Processors are swapped in only while recording and restored afterwards, also on an error or
cancel, through ``attention_processors.wrapped``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .attention_processors import ProcessorWrapper, is_cross_attention, text_states, wrapped

MID_RESOLUTION_FACTORS = (2, 4)  # latent size / layer size of the layers DAAM-style maps average


class _RecordingProcessor(ProcessorWrapper):
    """Runs the layer's own processor; also hands the layer's inputs (the text part) to the recorder."""

    def __init__(self, inner: Any, recorder: CrossAttentionRecorder) -> None:
        super().__init__(inner)
        self.recorder = recorder

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        text = text_states(encoder_hidden_states)
        if text is not None:
            self.recorder.record(attn, hidden_states, text)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def _layer_size(tokens: int, height: int, width: int) -> tuple[int, int] | None:
    """The (h, w) of a layer whose feature map has ``tokens`` pixels, in a UNet over a (height, width) latent."""
    h, w = height, width
    for _ in range(8):
        if h * w == tokens:
            return h, w
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return None


class CrossAttentionRecorder:
    """Sums of attention probabilities per layer resolution, while ``attached`` to a UNet."""

    def __init__(self, latent_height: int, latent_width: int) -> None:
        self.latent_size = (latent_height, latent_width)
        self.sums: dict[tuple[int, int], torch.Tensor] = {}  # (h, w) -> (h*w, tokens) float32
        self.counts: dict[tuple[int, int], int] = {}

    @contextlib.contextmanager
    def attached(self, unet: Any) -> Iterator[None]:
        """Record every cross-attention layer for the block, around whatever processor it has (diffusers',
        the sliced one, an IP-Adapter's); exactly those processors afterwards (``attention_processors``)."""

        def wrap(name: str, processor: Any) -> _RecordingProcessor | None:
            return _RecordingProcessor(processor, self) if is_cross_attention(name) else None

        with wrapped(unet, wrap):
            yield

    @torch.no_grad()
    def record(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor) -> None:
        if hidden_states.ndim != 3:
            return
        size = _layer_size(hidden_states.shape[1], *self.latent_size)
        if size is None:
            return
        # The last batch entry is the prompt's (diffusers stacks [negative, prompt] under guidance).
        query_in = hidden_states[-1:]
        context = encoder_hidden_states[-1:]
        if getattr(attn, "norm_cross", None):
            context = attn.norm_encoder_hidden_states(context)
        heads = attn.heads
        query = attn.to_q(query_in)
        key = attn.to_k(context)
        query = query.view(1, -1, heads, query.shape[-1] // heads).transpose(1, 2)
        key = key.view(1, -1, heads, key.shape[-1] // heads).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        scores = (query.float() @ key.float().transpose(-1, -2)) * float(attn.scale)
        probabilities = scores.softmax(dim=-1).mean(dim=1)[0].cpu()  # (pixels, tokens)
        if size in self.sums:
            self.sums[size] += probabilities
            self.counts[size] += 1
        else:
            self.sums[size] = probabilities.clone()
            self.counts[size] = 1

    def selected_sizes(self) -> list[tuple[int, int]]:
        """The layer sizes averaged: the mid resolutions where recorded, else every recorded one."""
        mid_sizes = {_downscaled(*self.latent_size, factor) for factor in MID_RESOLUTION_FACTORS}
        mid = [size for size in self.sums if size in mid_sizes]
        return mid or list(self.sums)

    def token_maps(self, token_groups: list[list[int]], height: int, width: int) -> np.ndarray:
        """One map per group of token positions (a word), averaged over its tokens, at (height, width).

        Returns float32 ``(groups, height, width)`` of mean attention probabilities (not normalised).
        """
        if not self.sums:
            raise RuntimeError("No cross-attention was recorded: the model has no cross-attention layers.")
        total = np.zeros((len(token_groups), height, width), dtype=np.float32)
        weight = 0
        for size in self.selected_sizes():
            mean = self.sums[size] / self.counts[size]  # (pixels, tokens)
            words = torch.stack([mean[:, group].mean(dim=1) for group in token_groups])  # (groups, pixels)
            words = words.view(1, len(token_groups), *size)
            upsampled = F.interpolate(words, size=(height, width), mode="bilinear", align_corners=False)[0]
            total += upsampled.numpy() * self.counts[size]
            weight += self.counts[size]
        return total / weight


def _downscaled(height: int, width: int, factor: int) -> tuple[int, int]:
    h, w = height, width
    for _ in range(int(math.log2(factor))):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w
