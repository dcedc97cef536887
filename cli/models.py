"""``latent_textures models``: the models in the model cache; the cache and online access the other commands use."""

from __future__ import annotations

import argparse
import contextlib
import json
import os

import bpy

from ..properties.model import DEFAULT_MODEL
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


def online() -> bool:
    """Downloads allowed: Blender's online access is on and ``HF_HUB_OFFLINE`` is not set."""
    from ..engine import hub

    return not hub.hub_offline(not getattr(bpy.app, "online_access", True))


def run_models(args) -> int:
    """Every model in the add-on's cache and the shared Hugging Face cache (each marked with its cache, and
    whether a Generate with that repo id reads that copy), and what a scan of the model folders finds."""
    from ..dependencies.model_scan import scan_all
    from ..engine.models import list_models_in_caches

    with model_cache(args.model_cache) as cache_dir:
        prefs = preferences()
        caches = prefs.hub_caches()
        folders = [*prefs.model_folder_paths(), *(os.path.abspath(os.path.expanduser(f)) for f in args.folder)]
        allow_pickle = prefs.allow_pickle
    listed = list_models_in_caches(caches)
    entries, missing = scan_all(folders, [], allow_pickle=allow_pickle)  # headers only
    if missing:
        raise UsageError(f"--folder: not a folder: {', '.join(missing)}")
    default = DEFAULT_MODEL
    default_cached = any(m["repo_id"] == default and m["is_pipeline"] and m["used"] for m in listed)
    standard = caches[1][0]
    if args.json:
        say(json.dumps({
            "cache_dir": cache_dir,
            "caches": [{"cache": label, "cache_dir": folder} for folder, label in caches],
            "online_access": online(),
            "models": listed,
            "default_model": {"repo_id": default, "cached": default_cached},
            "huggingface_cache": {"cache_dir": standard,
                                  "models": [m for m in listed if m["cache_dir"] == os.path.normpath(standard)]},
            "model_folders": {"folders": folders, "models": [_entry_json(e) for e in entries]},
        }, indent=2))
        return 0
    say("Hugging Face caches, in the order a repo id is looked up (read-only; downloads go to the first "
        "unless the preferences say Download To: Shared):")
    for number, (folder, label) in enumerate(caches, start=1):
        say(f"  {number}. {label}: {folder}")
    if listed:
        width = max(len(m["repo_id"]) for m in listed)
        for m in listed:
            kind = "pipeline" if m["is_pipeline"] else "files"
            mark = f"[{m['cache']}]" if m["used"] else f"[{m['cache']}, not used: an earlier cache has it]"
            say(f"  {m['repo_id']:<{width}}  {kind:<8}  {support.format_bytes(m['size_bytes']):>9}  {mark}")
    else:
        say("  (no models yet)")
    if default_cached:
        say(f"Default model {default}: cached")
    elif online():
        say(f"Default model {default}: not cached; downloaded on first use (about 4 GB)")
    else:
        say(f"Default model {default}: not cached, and downloads are off (offline mode): "
             "download it into the cache first, or pass --model with a local folder or .safetensors file")
    if folders:
        say(f"Model folders ({len(entries)} models, read from file headers only):")
        for folder in folders:
            say(f"  {folder}")
        for entry in entries:
            say(f"    {entry.describe()}  [{entry.path}]")
    say("Any local diffusers folder (with model_index.json) or .safetensors checkpoint works too: --model PATH")
    return 0


def _entry_json(entry) -> dict:
    fields = ("path", "kind", "family", "inpainting", "few_step", "size", "layout", "origin", "problem", "refused")
    return {name: getattr(entry, name) for name in fields}


def add_models_command(commands, prog: str) -> argparse.ArgumentParser:
    """The ``models`` sub-command's arguments."""
    models = commands.add_parser(
        "models",
        help="list the models available locally (the add-on's and the shared Hugging Face cache, model folders)",
        description="List the diffusion models in the add-on's model cache and in the standard Hugging Face cache "
                    "(HF_HUB_CACHE / HF_HOME), each marked with its cache, and the checkpoints, LoRAs and "
                    "ControlNets in the model folders (read from file headers only). A repo id listed here runs "
                    "offline.",
    )
    models.add_argument("--model-cache", metavar="DIR",
                        help="the cache folder to list (default: the add-on preferences' Model Cache)")
    models.add_argument("--folder", metavar="DIR", action="append", default=[],
                        help="also scan this folder of .safetensors files (e.g. ComfyUI's models/checkpoints; "
                             "headers only), beside the preferences' Model Folders; repeatable")
    models.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    return models
