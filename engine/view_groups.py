"""SYNC's batch of views in groups that fit memory (issue 29, item 7): the memory estimate, the groups, and the
UNet / ControlNet forward run group by group while the scheduler still steps the whole batch once per timestep.

The estimate (``ViewMemory``), per view of ``h x w`` latents, ``s`` samples per view (2 with CFG: the
unconditional and the conditional half) and ``b`` bytes per value of the UNet's dtype:

* *activations* - what one sample's UNet forward holds at its peak, beyond the weights: the skip
  connections of the down path (held until the up path reads them) and the working set where the tensors
  are widest, the first level's transformer feed-forward (GEGLU: 8 x C0 channels, then 4 x C0). Modelled
  as ``ACTIVATION_VALUES_PER_C0_PIXEL x C0 x h x w x b`` (C0 = ``block_out_channels[0]``). Measured
  (peak RSS of a fp32 SD-1.5-sized UNet forward on the CPU, torch's fused
  attention): 264 MB at batch 1, +170 MB per further sample at 64x64 latents, i.e. 50 and 32 values per
  C0 pixel; with an SD-1.5-sized ControlNet 340 MB and +224 MB (its residuals and control image included),
  60 values per C0 pixel beyond them at batch 1. The constant, 64, covers the batch-1 figures (they carry
  oneDNN's per-call weight reorders and other one-off buffers), so a group of n views is over-estimated.
  SDXL's first level has no attention, so the same constant over-estimates it (safe). Attention that
  materialises the score matrix (Attention Slicing: half the heads at a time; MPS) adds
  heads/2 x (h w)^2 values at the first attention level. A group of ``n`` views holds ``n x s`` of these;
  the ControlNet runs before the UNet (its own activations, smaller, are gone when the UNet's peak comes).
* *resident* - what every view holds for the whole step whatever the groups: the ControlNet's residuals
  for the whole batch (the pipeline calls it on the whole batch before the UNet; exact from the config:
  every down-path output plus the middle block's), the control image, the prompt embeddings, latents and
  scheduler history (small).

The decode comes after the denoising (its activations gone) and runs one view at a time
(``generation.generate``), within VAE tiling ``AUTO``'s own rule for one view's pixels: not counted here.

The budget: ``MEMORY_SHARE`` of what the device has beside the weights (``devices.memory_budget``, which
``LATENT_TEXTURES_MEMORY_BUDGET_MB`` overrides). Views per group = the most whose activations fit beside
every view's resident bytes; when not even one view fits, ``ViewsDoNotFitError`` names the most views that
would (before anything runs).

Both CFG halves of a view are always in its group (batch rows ``v``, ``V + v``, ...): a group is a set of
whole views, what the estimate counts, and a per-view attention scheme sees the same views in both halves.
Every sample's computation is independent of the others in the batch (GroupNorm, attention and the convs
are per sample), so grouping changes only how kernels block the batch: see tests/engine/test_view_groups.py.

Imports torch lazily (``grouped_forward`` runs on tensors the caller passes).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ViewsDoNotFitError, check_cancel

MEMORY_SHARE = 0.5  # of what the device has beside the weights: the rest is Blender's, the system's, the decode's
ACTIVATION_VALUES_PER_C0_PIXEL = 64  # see the module's docstring: 50 (UNet) and 60 (with ControlNet) measured at batch 1


@dataclass(frozen=True)
class ViewMemory:
    """Bytes one view takes: ``activations`` while its group runs the UNet, ``resident`` for the whole step."""

    activations: int
    resident: int


def down_path_values(unet_config: Any, height: int, width: int) -> int:
    """Values of every down-path output of one sample (the skip connections, or a ControlNet's residuals), plus
    the middle block's: ``conv_in``, then per level ``layers_per_block`` outputs and the downsampler's (none at
    the last level), each at that level's size."""
    channels = list(unet_config.block_out_channels)
    layers = unet_config.layers_per_block
    layers = list(layers) if isinstance(layers, (list, tuple)) else [int(layers)] * len(channels)
    h, w = int(height), int(width)
    total = channels[0] * h * w  # conv_in
    for level, (width_c, count) in enumerate(zip(channels, layers)):
        total += count * width_c * h * w
        if level < len(channels) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            total += width_c * h * w
    return total + channels[-1] * h * w  # the middle block


def _first_attention_level(unet_config: Any) -> int | None:
    for level, kind in enumerate(unet_config.down_block_types):
        if "CrossAttn" in kind:
            return level
    return None


def estimate(unet_config: Any, *, height: int, width: int, itemsize: int, samples_per_view: int,
             controlnet: bool, control_values: int = 0, prompt_values: int = 0,
             score_matrix: bool = False) -> ViewMemory:
    """``ViewMemory`` of one view of ``height x width`` latents (see the module's docstring). ``control_values``:
    the control image's values per sample; ``prompt_values``: the prompt embeddings' per sample;
    ``score_matrix``: the attention materialises its scores (Attention Slicing, MPS)."""
    if height < 1 or width < 1 or itemsize < 1 or samples_per_view < 1:
        raise ValueError(f"height, width, itemsize and samples_per_view must be positive; got "
                         f"{height}, {width}, {itemsize}, {samples_per_view}")
    pixels = int(height) * int(width)
    per_sample = ACTIVATION_VALUES_PER_C0_PIXEL * int(unet_config.block_out_channels[0]) * pixels
    level = _first_attention_level(unet_config)
    if score_matrix and level is not None:
        # diffusers takes the heads from num_attention_heads, else from attention_head_dim (its legacy naming)
        heads = getattr(unet_config, "num_attention_heads", None) or unet_config.attention_head_dim
        heads = heads[level] if isinstance(heads, (list, tuple)) else heads
        heads = max(1, int(heads) // 2)  # slice_size "auto": half the heads at a time
        tokens = pixels // (4 ** level)
        per_sample += heads * tokens * tokens
    resident = 4 * pixels * 4 * 3  # latents, noise prediction, one history entry (fp32, 4 channels)
    resident += int(control_values) + int(prompt_values)
    if controlnet:
        resident += down_path_values(unet_config, height, width)
    return ViewMemory(activations=per_sample * samples_per_view * itemsize, resident=resident * samples_per_view * itemsize)


def views_per_group(views: int, memory: ViewMemory, available: int | None) -> int:
    """The most views one group may hold with ``available`` bytes (None: unknown, all in one group).

    Raises ``ViewsDoNotFitError`` naming the most views that fit when not even one view per group does."""
    if views < 1:
        raise ValueError(f"views must be positive; got {views}")
    if available is None:
        return views
    room = int(available) - views * memory.resident
    if room < memory.activations:
        fits = max(0, (int(available) - memory.activations) // max(memory.resident, 1))
        advice = (f"use at most {fits} Views, a smaller Width/Height or Method Grid" if fits else
                  "use a smaller Width/Height or Method Grid")
        raise ViewsDoNotFitError(
            f"Whole Object Sync with {views} views needs about "
            f"{(views * memory.resident + memory.activations) / 2**30:.2f} GiB even one view at a time, more than "
            f"the {available / 2**30:.2f} GiB it may use here (half of the memory beside the model): at most "
            f"{fits} views fit; {advice}. Nothing was changed.")
    return max(1, min(views, room // max(memory.activations, 1)))


def refuse_split_attention(views: int, memory: ViewMemory, available: int) -> None:
    """Cross-view attention reads every view's neighbours in one UNet call, so its views cannot run in groups:
    raise ``ViewsDoNotFitError`` naming the most views one batch holds (``views_per_group`` found fewer)."""
    fits = int(available) // max(memory.resident + memory.activations, 1)
    raise ViewsDoNotFitError(
        f"Cross-View Attention runs all {views} views in one batch, which needs about "
        f"{views * (memory.resident + memory.activations) / 2**30:.2f} GiB, more than the {available / 2**30:.2f} GiB "
        f"it may use here: at most {fits} views fit in one batch; use fewer Views or Cross-View Attention None "
        "(the views then run in groups that fit). Nothing was changed.")


def view_groups(views: int, per_group: int) -> list[range]:
    """``views`` in the fewest groups of at most ``per_group``, as even as they come (sizes differ by at most 1)."""
    if views < 1 or per_group < 1:
        raise ValueError(f"views and per_group must be positive; got {views}, {per_group}")
    count = -(-views // per_group)
    base, extra = divmod(views, count)
    groups, start = [], 0
    for index in range(count):
        stop = start + base + (1 if index < extra else 0)
        groups.append(range(start, stop))
        start = stop
    return groups


def _select(value: Any, rows: Any, batch: int) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.index_select(0, rows.to(value.device)) if value.ndim and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {key: _select(item, rows, batch) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_select(item, rows, batch) for item in value)
    return value


def _merge(parts: list[Any], inverse: Any) -> Any:
    import torch

    first = parts[0]
    if isinstance(first, torch.Tensor):
        joined = torch.cat(parts, dim=0)
        return joined.index_select(0, inverse.to(joined.device))
    if isinstance(first, dict):  # diffusers' BaseOutput is an OrderedDict dataclass
        merged = {key: _merge([part[key] for part in parts], inverse) for key in first.keys()}
        return type(first)(**merged)
    if isinstance(first, (list, tuple)):
        return type(first)(_merge([part[index] for part in parts], inverse) for index in range(len(first)))
    return first


def _batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    sample = args[0] if args else kwargs.get("sample")
    return int(sample.shape[0])


@contextlib.contextmanager
def grouped_forward(modules: Sequence[Any], views: int, groups: Sequence[range], *,
                    before_group: Callable[[Any, int], None] | None = None,
                    cancel_event: threading.Event | None = None) -> Iterator[None]:
    """Each of ``modules`` (the UNet, the ControlNet) runs its forward in ``groups`` of whole views for the block:
    batch rows ``c x views + v`` for every copy ``c`` (the CFG halves) and every view ``v`` of the group, the
    outputs put back in batch order. ``before_group(module, index)`` before each group; the cancel event is
    checked before each. One group: the modules are left untouched. Restored afterwards (also after an error)."""
    if len(groups) <= 1:
        yield
        return
    import torch

    def wrap(module: Any, forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            batch = _batch_size(args, kwargs)
            if batch % views:
                raise ValueError(f"the batch ({batch}) must hold every view ({views}) a whole number of times")
            copies = batch // views
            parts, order = [], []
            for index, group in enumerate(groups):
                check_cancel(cancel_event)
                if before_group is not None:
                    before_group(module, index)
                rows = torch.tensor([copy * views + view for copy in range(copies) for view in group])
                parts.append(forward(*_select(args, rows, batch), **_select(kwargs, rows, batch)))
                order.append(rows)
            return _merge(parts, torch.argsort(torch.cat(order)))

        return run

    saved = []
    try:
        for module in modules:
            saved.append((module, module.__dict__.get("forward")))
            module.forward = wrap(module, module.forward)
        yield
    finally:
        for module, own in saved:
            if own is None:
                del module.forward
            else:
                module.forward = own
