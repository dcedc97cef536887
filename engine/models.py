"""What is in a Hugging Face cache folder (for the ``models`` command and a model picker)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def list_local_models(cache_dir: str) -> list[dict[str, Any]]:
    """Models cached in ``cache_dir``, largest first.

    Each entry: ``repo_id``, ``size_bytes``, ``files``, ``revisions`` (commit hashes),
    ``path`` (the repo's cache folder), ``last_modified`` (POSIX time) and
    ``is_pipeline`` (a diffusers pipeline, i.e. a snapshot has ``model_index.json``).
    A missing or empty folder gives ``[]``.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    models = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        models.append(
            {
                "repo_id": repo.repo_id,
                "size_bytes": int(repo.size_on_disk),
                "files": int(repo.nb_files),
                "revisions": sorted(r.commit_hash for r in repo.revisions),
                "path": str(repo.repo_path),
                "last_modified": float(repo.last_modified),
                "is_pipeline": any((r.snapshot_path / "model_index.json").exists() for r in repo.revisions),
            }
        )
    return sorted(models, key=lambda m: (-m["size_bytes"], m["repo_id"]))


def list_models_in_caches(caches: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The models in several caches ``(cache_dir, label)``, given in the order a repo id is looked up.

    Each entry is a ``list_local_models`` entry plus ``cache`` (the label), ``cache_dir`` and ``used``:
    whether a Generate with that repo id reads this copy (the first cache holding it as a pipeline; a
    repo that is nowhere a pipeline counts as used where it is first found). Sorted by repo id, then by
    cache order.
    """
    listed: list[dict[str, Any]] = []
    folders: list[str] = []
    for cache_dir, label in caches:
        folder = os.path.normpath(cache_dir)
        if folder in folders:
            continue  # the same folder under two names: listed once, under the first
        folders.append(folder)
        for model in list_local_models(folder):
            listed.append({**model, "cache": label, "cache_dir": folder, "order": len(folders)})
    seen: set[str] = set()
    pipelines = {m["repo_id"] for m in listed if m["is_pipeline"]}
    for model in listed:  # in cache order: the first pipeline copy (else the first copy) is the one used
        repo_id = model["repo_id"]
        model["used"] = repo_id not in seen and (model["is_pipeline"] or repo_id not in pipelines)
        if model["used"]:
            seen.add(repo_id)
    listed.sort(key=lambda m: (m["repo_id"], m.pop("order")))
    return listed
