"""Cached prompt embeddings: a pipeline's ``encode_prompt`` remembers its result for the same arguments.

Every pipeline class calls ``self.encode_prompt(...)`` with its own arguments, so the pipeline's own
method is wrapped rather than copied: a call with the same arguments (prompt, negative prompt, guidance
on/off, clip skip, device, ...) returns copies of the tensors it returned before, and the text encoder
does not run. Calls with precomputed embeddings or a LoRA scale pass straight through. The cache lives
with the loaded model, so a new model (or ``free()``) starts empty.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROMPT_CACHE_SIZE = 4  # prompts whose text embeddings are kept per loaded model
_EMBEDDING_ARGUMENTS = (
    "prompt_embeds",
    "negative_prompt_embeds",
    "pooled_prompt_embeds",
    "negative_pooled_prompt_embeds",
    "lora_scale",
)


@dataclass
class PromptCache:
    """``encode_prompt``'s arguments -> its outputs, newest last, at most ``PROMPT_CACHE_SIZE``.

    ``on_encoded``: told the seconds of every encode that ran (the running generation's clock), or None.
    """

    entries: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)
    on_encoded: Callable[[float], None] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()


def remember_prompt_embeddings(pipe: Any, cache: PromptCache) -> None:
    """Make ``pipe.encode_prompt`` answer from ``cache`` for arguments it has seen (see the module docstring)."""
    import torch

    if "encode_prompt" in vars(pipe) or not hasattr(pipe, "encode_prompt"):
        return
    method = type(pipe).encode_prompt
    signature = inspect.signature(method)
    owner = weakref.ref(pipe)  # no pipe -> wrapper -> pipe cycle: free() returns memory at once

    def encode_prompt(*args: Any, **kwargs: Any) -> Any:
        pipe_now = owner()
        assert pipe_now is not None
        key = _prompt_key(method, signature, pipe_now, args, kwargs)
        if key is None:
            return method(pipe_now, *args, **kwargs)
        cached = cache.entries.pop(key, None)
        if cached is None:
            start = time.perf_counter()
            cached = tuple(method(pipe_now, *args, **kwargs))
            if cache.on_encoded is not None:
                cache.on_encoded(time.perf_counter() - start)
        cache.entries[key] = cached  # newest last
        while len(cache.entries) > PROMPT_CACHE_SIZE:
            cache.entries.pop(next(iter(cache.entries)))
        return tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in cached)

    pipe.encode_prompt = encode_prompt


def _prompt_key(method: Any, signature: inspect.Signature, pipe: Any, args: Any, kwargs: Any) -> tuple[Any, ...] | None:
    """A hashable key for one ``encode_prompt`` call, or None when it must not be cached."""
    import torch

    try:
        bound = signature.bind(pipe, *args, **kwargs)
    except TypeError:
        return None
    items: list[tuple[str, Any]] = []
    for name, value in list(bound.arguments.items())[1:]:  # [0] is self
        if name in _EMBEDDING_ARGUMENTS:
            if value is not None:
                return None
            continue
        if isinstance(value, torch.device):
            value = str(value)
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            return None  # a tensor, an image, ...: not something to key a cache on
        items.append((name, values if isinstance(value, (list, tuple)) else value))
    return (method.__qualname__, *items)
