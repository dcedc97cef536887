"""What is in a Hugging Face cache folder (for the ``models`` command and a model picker)."""

from __future__ import annotations

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
