"""The Hugging Face hub cache on disk, read without huggingface_hub (so the preferences can show it cheaply).

Layout (huggingface_hub's documented cache, the one ``from_pretrained(...,
cache_dir=...)`` and ``snapshot_download(..., cache_dir=...)`` share):

    <cache>/models--<org>--<name>/blobs/<sha>          file contents (.incomplete while downloading)
    <cache>/models--<org>--<name>/snapshots/<commit>/… the repo's tree (links to blobs; copies on
                                                       Windows without symlink rights)
    <cache>/models--<org>--<name>/refs/main            the commit "main" resolved to
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

# The components the engine never loads are not needed for "complete".
from ..engine.files import SKIPPED_COMPONENTS, is_repo_id

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def standard_hub_cache(environ: Mapping[str, str] | None = None) -> str:
    """The standard Hugging Face hub cache folder, as ``huggingface_hub.constants.HF_HUB_CACHE`` defines it.

    ``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else ``<HF_HOME>/hub`` where ``HF_HOME``
    defaults to ``<XDG_CACHE_HOME or ~/.cache>/huggingface``. Read from ``environ`` at each call (not at
    import like huggingface_hub), so a changed environment is seen without importing anything.
    """
    env = os.environ if environ is None else environ

    def expand(path: str) -> str:
        return os.path.expandvars(os.path.expanduser(path))

    home = expand(env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or expand("~/.cache"), "huggingface"))
    legacy = env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return expand(env.get("HF_HUB_CACHE") or legacy)


def validate_repo_id(repo_id: str) -> str:
    """``org/name`` as the hub allows it; anything else (paths, URLs, ``..``) raises ``ValueError``."""
    repo_id = repo_id.strip()
    if not is_repo_id(repo_id):
        raise ValueError(
            f"{repo_id!r} is not a Hugging Face repo id: expected organisation/name, "
            "e.g. stable-diffusion-v1-5/stable-diffusion-v1-5"
        )
    return repo_id


def repo_folder(cache_dir: str, repo_id: str) -> str:
    return os.path.join(cache_dir, "models--" + validate_repo_id(repo_id).replace("/", "--"))


def folder_size(path: str) -> int:
    """Bytes in the files under ``path``, not following links (snapshot links would count blobs twice)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                try:
                    total += os.path.getsize(full)
                except OSError:
                    pass
    return total


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    folder: str  # models--org--name
    snapshot: str | None  # the snapshot "main" points at
    size: int  # bytes on disk, partial downloads included
    complete: bool  # every component the pipeline needs has its weights
    problem: str | None = None  # why it is not complete


def cached_model(cache_dir: str, repo_id: str, measure: bool = True) -> CachedModel | None:
    """What the cache holds for ``repo_id`` (None: nothing at all).

    ``measure=False`` skips adding up file sizes (``size`` is -1): cheap enough for every redraw.
    """
    folder = repo_folder(cache_dir, repo_id)
    if not os.path.isdir(folder):
        return None
    snapshot = main_snapshot(folder)
    size = folder_size(folder) if measure else -1
    if snapshot is None:
        return CachedModel(repo_id, folder, None, size, False, "the download did not finish")
    problem = _missing_components(snapshot)
    return CachedModel(repo_id, folder, snapshot, size, problem is None, problem)


def main_snapshot(folder: str) -> str | None:
    snapshots = os.path.join(folder, "snapshots")
    try:
        with open(os.path.join(folder, "refs", "main"), encoding="utf-8") as handle:
            commit = handle.read().strip()
        candidate = os.path.join(snapshots, commit)
        if os.path.isdir(candidate):
            return candidate
    except OSError:
        pass
    # No refs/main (downloaded at a pinned revision): the only snapshot, if there is one.
    try:
        entries = [os.path.join(snapshots, name) for name in os.listdir(snapshots)]
    except OSError:
        return None
    entries = [entry for entry in entries if os.path.isdir(entry)]
    return entries[0] if len(entries) == 1 else None


def _missing_components(snapshot: str) -> str | None:
    """None when ``model_index.json`` and the weights of each required component are present."""
    try:
        with open(os.path.join(snapshot, "model_index.json"), encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError):
        return "model_index.json is missing (not a diffusers model, or the download did not finish)"
    for component, value in index.items():
        if component.startswith("_") or component in SKIPPED_COMPONENTS:
            continue
        if not (isinstance(value, list) and len(value) == 2 and value[0] is not None):
            continue
        path = os.path.join(snapshot, component)
        if not os.path.isdir(path):
            return f"the {component} folder is missing"
        files = os.listdir(path)
        # Models have config.json + weights; schedulers and tokenizers only configs.
        if "config.json" in files and not any(name.endswith(WEIGHT_SUFFIXES) for name in files):
            return f"the {component} weights are missing"
    return None


def cached_repo_ids(cache_dir: str) -> list[str]:
    """Every model repo in the cache, e.g. ``["stable-diffusion-v1-5/stable-diffusion-v1-5"]``."""
    try:
        names = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    ids = []
    for name in names:
        if name.startswith("models--") and name.count("--") >= 2:
            org, _, model = name.removeprefix("models--").partition("--")
            ids.append(f"{org}/{model}")
    return ids


def remove_cached_model(cache_dir: str, repo_id: str) -> int:
    """Delete a model from the cache (and its lock files); returns the bytes freed."""
    folder = repo_folder(cache_dir, repo_id)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{repo_id} is not in the cache folder {cache_dir}")
    size = folder_size(folder)
    shutil.rmtree(folder)
    shutil.rmtree(os.path.join(cache_dir, ".locks", os.path.basename(folder)), ignore_errors=True)
    return size

