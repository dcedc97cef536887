"""Prompt token counts for the panel: computed once per (model, prompt), read from a cache while drawing.

The tokenizer files are read with the ``tokenizers`` package (engine/tokens.py): no torch,
no model load. A model not on disk yet shows a hint; it is looked for again after a few
seconds, so a finished download shows its counts without a restart.
"""

from __future__ import annotations

import importlib.util
import time
import traceback

from ..engine.tokens import count_tokens, tokenizer_folders

RETRY_MISSING_AFTER = 5.0  # seconds before a model without tokenizer files is looked for again
_CACHE_SIZE = 32
_cache: dict[tuple, tuple[float, list[tuple[str, str]]]] = {}


def token_lines(context, settings) -> list[tuple[str, str]]:
    """(text, icon) lines: each prompt's token count against the window, and the words it ignores."""
    from ..preferences import get_preferences
    from .requests import resolve_model_path

    if not settings.prompt and not settings.negative_prompt:
        return []
    cache_dir = get_preferences(context).resolved_model_cache_dir()
    key = (settings.model, settings.prompt, settings.negative_prompt, cache_dir)
    cached = _cache.get(key)
    if cached is not None and (cached[1] or time.monotonic() - cached[0] < RETRY_MISSING_AFTER):
        return cached[1]
    try:
        lines = _compute(resolve_model_path(settings.model), settings.prompt, settings.negative_prompt, cache_dir)
    except Exception as error:  # a broken tokenizer file must not break the panel; the console keeps why
        traceback.print_exc()
        lines = [(f"Tokens: could not read the tokenizer ({type(error).__name__})", "ERROR")]
    if len(_cache) >= _CACHE_SIZE:
        _cache.pop(next(iter(_cache)))
    _cache[key] = (time.monotonic(), lines)
    return lines


def _compute(model: str, prompt: str, negative: str, cache_dir: str) -> list[tuple[str, str]]:
    from ..dependencies.blender import activate_engine_packages

    activate_engine_packages()
    if importlib.util.find_spec("tokenizers") is None:
        return []
    folders = tokenizer_folders(model, cache_dir)
    if not folders:
        return [("Token count: once the model is on disk", "INFO")]
    lines: list[tuple[str, str]] = []
    for label, text in (("Prompt", prompt), ("Negative", negative)):
        if not text:
            continue
        counts = [count_tokens(folder, text) for folder in folders]
        same = all(c.tokens == counts[0].tokens and c.window == counts[0].window for c in counts)
        shown = counts[:1] if same else counts
        for index, counted in enumerate(shown):
            encoder = "" if same else f" (encoder {index + 1})"
            both = " (both encoders)" if same and len(counts) > 1 else ""
            line = f"{label}{encoder}: {counted.count}/{counted.window} tokens{both}"
            if counted.over:
                ignored = ", ".join(counted.ignored) or "punctuation"
                lines.append((f"{line}; ignored: {ignored}", "ERROR"))
            else:
                lines.append((line, "INFO"))
    return lines
