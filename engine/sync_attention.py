"""Optional cross-view attention for Whole Object SYNC (issue 29, item 5; ``sync_attention``).

SyncMVD (``shared/notes/sync.md`` section 3) lets each view's self-attention also attend to its
neighbouring views at every step, and to a reference view in the early steps. Here:

- *Neighbours* come from the SYNC plan's correspondence, not from the order of the views: for each view,
  the ``NEIGHBOURS`` (2, as SyncMVD's ring) other views whose latent pixels read the most texels it reads
  too (ties: the nearer in order, then the first). A View Collection's cameras are in name order, which
  says nothing about which views see the same surface; the shared texels do. A view that shares no texel
  with any other still takes the two nearest in order (one count for every view: one batched call).
- *Reference* (``NEIGHBOURS_REFERENCE``): during the first round(``REFERENCE_FRACTION`` x steps) steps
  (0.2: SyncMVD's ``ref_attention_end``, its 5 of 30 steps) every view also attends to view 1 in a
  separate softmax: out = (Attn(q, own + neighbours) + w Attn(q, view 1)) / (1 + w), w = 1 (SyncMVD's).
  The processor's output projection is affine, so averaging the two outputs averages the attentions.

The wrapper sits on every UNet self-attention layer (``attn1``) and passes the gathered keys/values as
``encoder_hidden_states`` to the layer's own processor (attn1 gets no text), so it composes with whatever
is installed: ``AttnProcessor2_0``, the sliced attention of the attention-slicing preference, an
IP-Adapter's self-attention processors, the insight recorder. Cross-attention (``attn2``, which receives
a (text, image) tuple under an IP-Adapter) keeps its processor object untouched. The ControlNet keeps
plain attention (as SyncMVD).

The UNet batch must hold every view: ``H x V`` entries, H blocks of the V views in order (H = 2 under
guidance: diffusers stacks [negative, prompt]); each entry attends only within its own block, so the
conditional and unconditional halves never mix. Running the views in groups would hide neighbours:
cross-view attention needs all views in one UNet call (a batch that is not whole views is refused).

Each wrapper is an ``attention_processors.ProcessorWrapper`` installed with ``attention_processors.wrapped``
(the engine's one owner of processors, which also knows an IP-Adapter's) for the run only; the very same
processor objects are put back afterwards, also after an error or cancel. Imports torch (through
``attention_processors``): reached only from ``sync.py``'s functions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .attention_processors import ProcessorWrapper, processors, wrapped

ATTENTION_MODES = ("NONE", "NEIGHBOURS", "NEIGHBOURS_REFERENCE")
NEIGHBOURS = 2
REFERENCE_FRACTION = 0.2
REFERENCE_WEIGHT = 1.0
REFERENCE_VIEW = 0  # view 1


def check_mode(mode: str) -> None:
    """ValueError naming ``sync_attention`` for a mode this module does not know."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"sync_attention must be one of {', '.join(ATTENTION_MODES)}; got {mode!r}")


def reference_steps(steps: int, fraction: float = REFERENCE_FRACTION) -> int:
    """How many of the first ``steps`` steps also attend to the reference view: round(fraction x steps), halves up."""
    return min(int(steps), int(math.floor(float(fraction) * int(steps) + 0.5)))


def neighbour_views(texel: np.ndarray, count: int = NEIGHBOURS) -> np.ndarray:
    """(V, 1 + min(count, V - 1)) int64: each view itself, then the views sharing the most texels with it (see
    the module's docstring). ``texel``: (V, pixels) texel index per latent pixel, -1 = background."""
    texel = np.asarray(texel)
    if texel.ndim != 2 or texel.shape[0] < 1:
        raise ValueError(f"texel must be (views, pixels); got shape {texel.shape}")
    views = texel.shape[0]
    texels = int(texel.max()) + 1 if texel.size and texel.max() >= 0 else 1
    reads = np.zeros((views, texels), dtype=np.float32)  # 0/1: exact in float32 up to 2**24 shared texels
    for index in range(views):
        seen = texel[index][texel[index] >= 0]
        reads[index, seen] = 1.0
    shared = reads @ reads.T
    taken = min(int(count), views - 1)
    rows = []
    for index in range(views):
        others = [j for j in range(views) if j != index]
        distance = [min((j - index) % views, (index - j) % views) for j in others]
        order = sorted(range(len(others)), key=lambda k: (-shared[index, others[k]], distance[k], others[k]))
        rows.append([index] + [others[k] for k in order[:taken]])
    return np.asarray(rows, dtype=np.int64)


class CrossViews:
    """What every wrapped layer of one run shares: the neighbours, the mode and the current step."""

    def __init__(self, neighbours: np.ndarray, mode: str, reference_steps: int, step: Callable[[], int],
                 blocks: Callable[[], int] | None = None) -> None:
        """``step``: the index of the step being computed; ``blocks``: how many sets of the views the UNet batch
        must hold (2 under guidance), where known - a batch of another size (views run in groups) is refused."""
        import torch

        check_mode(mode)
        self.neighbours = torch.as_tensor(np.asarray(neighbours, dtype=np.int64))
        self.views = int(self.neighbours.shape[0])
        self.mode = mode
        self.reference_steps = int(reference_steps)
        self.step = step
        self.expected_blocks = blocks

    def reference_active(self) -> bool:
        return self.mode == "NEIGHBOURS_REFERENCE" and self.step() < self.reference_steps

    def blocks(self, batch: int) -> int:
        expected = None if self.expected_blocks is None else self.expected_blocks() * self.views
        if batch % self.views or (expected is not None and batch != expected):
            raise ValueError(f"sync_attention: the UNet batch of {batch} is not whole sets of the {self.views} "
                             "views; cross-view attention needs every view in one UNet call")
        return batch // self.views


class CrossViewProcessor(ProcessorWrapper):
    """Self-attention over the view itself and its neighbours (and the reference), through ``inner``."""

    def __init__(self, inner: Any, views: CrossViews) -> None:
        super().__init__(inner)
        self.views = views

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, **kwargs: Any) -> Any:
        run = super().__call__
        if encoder_hidden_states is not None or hidden_states.ndim != 3:  # not the transformer's self-attention
            return run(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        if attention_mask is not None:
            raise ValueError("sync_attention: a self-attention mask cannot be extended over the views")
        import torch

        batch, tokens, channels = hidden_states.shape
        blocks = self.views.blocks(batch)
        views = self.views.views
        offsets = torch.arange(blocks, device=hidden_states.device).repeat_interleave(views) * views  # block starts
        index = self.views.neighbours.to(hidden_states.device).repeat(blocks, 1) + offsets[:, None]  # (B, 1 + k)
        context = hidden_states[index].reshape(batch, index.shape[1] * tokens, channels)
        out = run(attn, hidden_states, context, None, temb, **kwargs)
        if self.views.reference_active():
            reference = hidden_states[offsets + REFERENCE_VIEW]
            seen = run(attn, hidden_states, reference, None, temb, **kwargs)
            out = (out + REFERENCE_WEIGHT * seen) / (1.0 + REFERENCE_WEIGHT)
        return out


def _self_attention(name: str) -> bool:
    return name.endswith("attn1.processor")


def cross_view_attention(unet: Any, views: CrossViews) -> contextlib.AbstractContextManager[Any]:
    """Every self-attention processor of ``unet`` wrapped for the block (through the engine's one owner of
    processors, ``attention_processors.wrapped``); the same objects back afterwards."""
    if not any(_self_attention(name) for name in processors(unet)):
        raise ValueError("sync_attention: the UNet has no self-attention layers (attn1)")
    return wrapped(unet, lambda name, processor: CrossViewProcessor(processor, views) if _self_attention(name)
                   else None)
