"""LoRAs as adapters on the loaded base model: loaded once, activated with their weights, disabled when not
asked for (no reload; off gives the base pixels exactly). Finding and reading the files is ``loras.py``'s.

Under ``torch.compile`` the pipeline's UNet is the compiled wrapper, which diffusers' adapter calls skip
(not a ``ModelMixin``: they raised, or did nothing and left an adapter active): they run on the UNet it wraps
instead, and the wrapper compiles again for each new adapter set (``torch._dynamo`` guards on the changed
layers; back to a set it has seen, its graph is reused). Measured on the tiny model (inductor, CPU weight
freezing, 64 px, a busy 2-core machine): the first compile 248 s, a LoRA's set 142 s more, plain again 62 s
(inductor's cache: disabled adapters trace to the plain graph), every later switch 0.2 s; the pixels: the LoRA
3.7e-6 from eager, plain after it bit-identical to plain before. Past dynamo's ``recompile_limit`` (8 sets)
the UNet runs eagerly: slower, the same picture.

An adapter is cached per file *content* (path and sha256, as the recipe names it): a file overwritten at
the same path (a trainer's ``last.safetensors``) is loaded again, and its old adapter is dropped.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

from . import devices, loras
from .base_model import LoadedModel, uncompiled_unet
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
    active: list[tuple[str, float]] = []
    entries: list[dict[str, Any]] = []
    try:
        with uncompiled_unet(model.base):
            for i, spec in enumerate(specs):
                lora = loras.resolve(
                    spec.source,
                    allow_pickle=options.allow_pickle,
                    cache_dir=options.cache_dir,
                    offline=options.offline,
                    read_cache_dirs=options.read_cache_dirs,
                    on_progress=on_progress,
                    cancel_event=cancel_event,
                )
                adapter = _adapter_for(model, lora, f"loras[{i}]", {a for a, _ in active}, cancel_event)
                active.append((adapter, float(spec.weight)))
                entries.append(lora.recipe(spec.weight))
            _activate(model, tuple(active))
            _trim_loras(model, {a for a, _ in active})
    except BaseException:
        # Whatever diffusers left active (a new adapter is made active as it loads) is set right by the next run.
        model.lora_state = _UNKNOWN
        raise
    return entries


_UNKNOWN = (("", math.nan),)  # an adapter state no request has (nan != nan)


def _adapter_for(
    model: LoadedModel, lora: loras.LoraFile, field_name: str, keep: set[str], cancel_event: threading.Event | None
) -> str:
    """The adapter holding ``lora``'s present contents: the cached one, else loaded (dropping the adapters of the
    file's earlier contents, except those in ``keep``)."""
    key = (str(lora.path), loras.file_sha256(lora.path))
    cached = model.lora_adapters.get(key)
    if cached is not None:
        model.lora_adapters[key] = model.lora_adapters.pop(key)  # newest last
        return cached[0]
    _drop_stale(model, key[0], keep)
    check_cancel(cancel_event)
    return _load_lora(model, lora, key, field_name)


def _activate(model: LoadedModel, state: tuple[tuple[str, float], ...]) -> None:
    """Make exactly the adapters of ``state`` active with their weights (none: every adapter disabled)."""
    if state == model.lora_state:
        return
    base = model.base
    if state:
        base.set_adapters([a for a, _ in state], adapter_weights=[w for _, w in state])
        base.enable_lora()
    elif model.lora_adapters:
        base.disable_lora()
    model.prompt_cache.clear()  # a LoRA on the text encoder changes the prompt's embeddings
    model.lora_state = state


def _load_lora(model: LoadedModel, lora: loras.LoraFile, key: tuple[str, str], field_name: str) -> str:
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
        if devices.is_oom(error):  # memory ran out, the LoRA may fit: devices.oom_as_engine_error says so
            raise
        raise EngineError(
            f"{field_name}: the LoRA {lora.name} does not fit the model {model.source.location} "
            f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''})."
        ) from error
    model.lora_adapters[key] = (adapter, lora)
    # load_lora_weights makes the new adapter the active one: whatever was recorded is stale now.
    model.lora_state = ((adapter, math.nan),)
    return adapter


def _drop_stale(model: LoadedModel, path: str, keep: set[str]) -> None:
    """Unload the adapters of ``path``'s earlier contents (the file was overwritten): never asked for again."""
    for key in [k for k, (a, _) in model.lora_adapters.items() if k[0] == path and a not in keep]:
        adapter, _ = model.lora_adapters.pop(key)
        model.base.delete_adapters(adapter)


def _trim_loras(model: LoadedModel, keep: set[str]) -> None:
    """Unload the oldest adapters not in use beyond ``LORA_CACHE_SIZE``."""
    while len(model.lora_adapters) > LORA_CACHE_SIZE:
        key = next((k for k, (a, _) in model.lora_adapters.items() if a not in keep), None)
        if key is None:
            return
        adapter, _ = model.lora_adapters.pop(key)
        model.base.delete_adapters(adapter)
