"""LoRAs as adapters on the loaded base model: loaded once, activated with their weights, disabled when not
asked for (no reload; off gives the base pixels exactly). Finding and reading the files is ``loras.py``'s.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

from . import loras
from .base_model import LoadedModel
from .errors import EngineError, check_cancel
from .request import EngineOptions, LoraSpec, ProgressCallback

LORA_CACHE_SIZE = 8  # LoRA adapters kept loaded into the model (the ones not asked for are disabled)


def apply_loras(
    model: LoadedModel,
    options: EngineOptions,
    specs: tuple[LoraSpec, ...] | list[LoraSpec],
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> list[dict[str, Any]]:
    """Make exactly ``specs`` active on the model (loading new adapters, disabling the others).

    Adapters stay loaded (up to ``LORA_CACHE_SIZE``) so switching back costs nothing; with no
    LoRA asked for, all are disabled and the model computes exactly as without them.

    Returns:
        The recipe entries (name, repo id or sha256, weight), in the request's order.
    """
    base = model.base
    active: list[tuple[str, float]] = []
    entries: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        field_name = f"loras[{i}]"
        lora = loras.resolve(
            spec.source,
            allow_pickle=options.allow_pickle,
            cache_dir=options.cache_dir,
            offline=options.offline,
            read_cache_dirs=options.read_cache_dirs,
            on_progress=on_progress,
            cancel_event=cancel_event,
        )
        cached = model.lora_adapters.get(str(lora.path))
        if cached is None:
            check_cancel(cancel_event)
            adapter = _load_lora(model, lora, field_name)
        else:
            adapter = cached[0]
            model.lora_adapters[str(lora.path)] = model.lora_adapters.pop(str(lora.path))  # newest last
        active.append((adapter, float(spec.weight)))
        entries.append(lora.recipe(spec.weight))
    state = tuple(active)
    if state != model.lora_state:
        if active:
            base.set_adapters([a for a, _ in active], adapter_weights=[w for _, w in active])
            base.enable_lora()
        elif model.lora_adapters:
            base.disable_lora()
        model.prompt_cache.clear()  # a LoRA on the text encoder changes the prompt's embeddings
        model.lora_state = state
    _trim_loras(model, {a for a, _ in active})
    return entries


def _load_lora(model: LoadedModel, lora: loras.LoraFile, field_name: str) -> str:
    base = model.base
    try:
        state_dict = loras.read_state_dict(lora)
    except (OSError, ValueError, RuntimeError) as error:
        raise EngineError(
            f"{field_name}: the LoRA {lora.name} could not be read ({type(error).__name__}: {error})."
        ) from error
    loras.check_family(state_dict, base.unet.config.cross_attention_dim, model.family.name, lora.name, field_name)
    model.adapters_made += 1
    adapter = f"lora_{model.adapters_made}"
    try:
        base.load_lora_weights(state_dict, adapter_name=adapter)
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        with contextlib.suppress(Exception):  # take back whatever part of it was injected
            base.delete_adapters(adapter)
        raise EngineError(
            f"{field_name}: the LoRA {lora.name} does not fit the model {model.source.location} "
            f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''})."
        ) from error
    model.lora_adapters[str(lora.path)] = (adapter, lora)
    # load_lora_weights makes the new adapter the active one: whatever was recorded is stale now.
    model.lora_state = ((adapter, math.nan),)
    return adapter


def _trim_loras(model: LoadedModel, keep: set[str]) -> None:
    """Unload the oldest adapters not in use beyond ``LORA_CACHE_SIZE``."""
    while len(model.lora_adapters) > LORA_CACHE_SIZE:
        path = next((p for p, (a, _) in model.lora_adapters.items() if a not in keep), None)
        if path is None:
            return
        adapter, _ = model.lora_adapters.pop(path)
        model.base.delete_adapters(adapter)
