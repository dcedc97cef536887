"""The engine's attention processors around whatever diffusers installed.

Two kinds of processor are the engine's own: those it puts on the UNet for as long as the model is loaded
(the sliced attention of the attention-slicing preference) and wrappers it puts around each layer's processor
for one run (the insight recorder, SYNC's cross-view attention). diffusers installs its own when an IP-Adapter
is loaded. What diffusers does to them (checked in diffusers 0.42.1, ``../shared/notes/checked-facts.md``):
``load_ip_adapter`` and ``unload_ip_adapter`` rebuild every processor as ``type(p)()`` (a wrapper or a sliced
processor raises ``TypeError``), ``set_ip_adapter_scale`` finds the IP processors with ``isinstance`` (through
a wrapper it silently does nothing), and the IP processors are ``nn.Module``s (installed only through
``unet.set_attn_processor``). Hence one order, owned here:

* ``take_off`` before diffusers rebuilds the processors: every layer gets diffusers' default processor and
  the caller keeps what was there;
* ``put_back`` after: the kept processor goes back on every layer where diffusers left a default one; a layer
  where diffusers installed its own (an IP-Adapter's cross-attention) keeps it - diffusers has no sliced IP
  processor, so with attention slicing on, those layers run unsliced (cross-attention to 77 + 4 tokens: its
  attention matrix is a few percent of self-attention's, which keeps its slices);
* ``wrapped`` for one run: wrappers around the processors there now, exactly those processors afterwards.

Wrappers are ``ProcessorWrapper``s: ``nn.Module``s, so an inner processor with weights (an IP-Adapter's) stays
a submodule of the UNet while wrapped (moved and offloaded with it). Attention calls a wrapper with the
arguments its own signature names: extra cross-attention keywords (``ip_adapter_masks``) do not pass through.

Imports torch; reached only through the engine's tasks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch


class ProcessorWrapper(torch.nn.Module):
    """One of the engine's processors around a layer's own: by default it runs the inner one unchanged."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner  # an nn.Module (an IP processor) becomes a submodule; a plain processor an attribute

    def __call__(  # overrides nn.Module's call, as diffusers' own nn.Module processors do
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The inner processor's output; a subclass does its part and calls this (``temb`` is passed on only
        where given: the sliced processor takes none). The explicit parameters are what ``Attention`` reads to
        decide which extra keywords reach a processor."""
        if temb is not None:
            kwargs["temb"] = temb
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, **kwargs)


def text_states(encoder_hidden_states: Any) -> torch.Tensor | None:
    """The text part of a cross-attention layer's context: with an IP-Adapter loaded diffusers passes a tuple
    (text, [image tokens per adapter]); otherwise the text embeddings themselves (None in self-attention)."""
    if isinstance(encoder_hidden_states, tuple):
        return encoder_hidden_states[0]
    return encoder_hidden_states


def unwrap(processor: Any) -> Any:
    """The processor inside the engine's wrappers (diffusers' own)."""
    while isinstance(processor, ProcessorWrapper):
        processor = processor.inner
    return processor


def processors(unet: Any) -> dict[str, Any]:
    """Every attention layer's processor by name (``<module path>.processor``), in the UNet's order."""
    return dict(unet_module(unet).attn_processors)


def install(unet: Any, by_name: dict[str, Any]) -> None:
    """Put ``by_name``'s processor on every layer (diffusers' installer: nn.Module processors become
    submodules, a plain one replaces a module cleanly)."""
    unet_module(unet).set_attn_processor(dict(by_name))  # it pops from the dict it gets


def is_default(processor: Any) -> bool:
    """diffusers' default processor (what ``type(p)()`` rebuilds and what unloading leaves)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    return type(processor) in (AttnProcessor, AttnProcessor2_0)


def take_off(unet: Any) -> dict[str, Any]:
    """diffusers' default processor on every layer; returns what was there (for ``put_back``)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    before = processors(unet)
    install(unet, {name: AttnProcessor2_0() for name in before})
    return before


def put_back(unet: Any, before: dict[str, Any]) -> None:
    """``before``'s processor on every layer where diffusers left its default; diffusers' own stay."""
    now = processors(unet)
    if set(now) != set(before):
        raise RuntimeError("The UNet's attention layers changed while diffusers rebuilt their processors.")
    install(unet, {name: before[name] if is_default(processor) else processor for name, processor in now.items()})


@contextlib.contextmanager
def wrapped(unet: Any, wrap: Callable[[str, Any], ProcessorWrapper | None]) -> Iterator[dict[str, Any]]:
    """``wrap(name, processor)`` around each layer's processor (None: that layer unchanged) for the block;
    afterwards exactly the processors that were there, also on an error or cancel. Yields the wrappers by name."""
    before = processors(unet)
    wrappers = {name: wrapper for name, processor in before.items() if (wrapper := wrap(name, processor)) is not None}
    if not wrappers:
        yield wrappers
        return
    install(unet, {name: wrappers.get(name, processor) for name, processor in before.items()})
    try:
        yield wrappers
    finally:
        install(unet, before)


def is_cross_attention(name: str) -> bool:
    """A transformer block's text (cross-)attention layer, by its processor name."""
    return name.endswith("attn2.processor")


def unet_module(unet: Any) -> Any:
    """The UNet itself, also where the pipeline holds its ``torch.compile`` wrapper."""
    return getattr(unet, "_orig_mod", unet)
