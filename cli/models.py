"""``latent_textures models``: the models in the model cache; the cache and online access the other commands use."""

from __future__ import annotations

import contextlib
import json
import os

import bpy

from .. import properties
from . import support
from .errors import UsageError, say


def preferences():
    from ..preferences import get_preferences

    return get_preferences(bpy.context)


@contextlib.contextmanager
def model_cache(path: str | None):
    """The add-on preferences' model cache, switched to ``path`` for the duration of the command."""
    prefs = preferences()
    if path is None:
        yield prefs.resolved_model_cache_dir()
        return
    folder = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--model-cache is not a folder: {folder}")
    saved = prefs.model_cache_dir
    prefs.model_cache_dir = folder
    try:
        yield prefs.resolved_model_cache_dir()
    finally:
        prefs.model_cache_dir = saved


def _local_models(cache_dir: str) -> list[dict]:
    from ..engine import list_local_models

    return list_local_models(cache_dir)


def online() -> bool:
    """Downloads allowed: Blender's online access is on and ``HF_HUB_OFFLINE`` is not set."""
    from ..engine import sources

    return not sources.hub_offline(not getattr(bpy.app, "online_access", True))


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def run_models(args) -> int:
    with model_cache(args.model_cache) as cache_dir:
        found = _local_models(cache_dir)
    default = properties.DEFAULT_MODEL
    default_cached = any(m["repo_id"] == default and m["is_pipeline"] for m in found)
    hub_cache = _hub_cache_dir()
    elsewhere = []
    if os.path.normpath(hub_cache) != os.path.normpath(cache_dir):
        elsewhere = _local_models(hub_cache)
    if args.json:
        say(json.dumps({
            "cache_dir": cache_dir,
            "online_access": online(),
            "models": found,
            "default_model": {"repo_id": default, "cached": default_cached},
            "huggingface_cache": {"cache_dir": hub_cache, "models": elsewhere},
        }, indent=2))
        return 0
    say(f"Model cache: {cache_dir}")
    if found:
        width = max(len(m["repo_id"]) for m in found)
        for m in found:
            kind = "pipeline" if m["is_pipeline"] else "files"
            say(f"  {m['repo_id']:<{width}}  {kind:<8}  {support.format_bytes(m['size_bytes']):>9}  {m['path']}")
    else:
        say("  (no models yet)")
    if default_cached:
        say(f"Default model {default}: cached")
    elif online():
        say(f"Default model {default}: not cached; downloaded on first use (about 4 GB)")
    else:
        say(f"Default model {default}: not cached, and downloads are off (offline mode): "
             "download it into the cache first, or pass --model with a local folder or .safetensors file")
    if elsewhere:
        say(f"Also in the Hugging Face cache {hub_cache} (use them with --model-cache {hub_cache}):")
        for m in elsewhere:
            say(f"  {m['repo_id']}")
    say("Any local diffusers folder (with model_index.json) or .safetensors checkpoint works too: --model PATH")
    return 0
