"""Which exact weights a recipe used: the hub snapshot's commit, or a local checkpoint file's SHA-256.

"Same recipe" then means the same weights. A checkpoint is hashed once per
(path, modification time, size) - in memory for the session and in a small JSON
file in the model cache folder across sessions - so a 4 GB file costs one extra
read the first time it is loaded (a few seconds at disk speed) and nothing after.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

DIGEST_CACHE_FILE = "latent_textures_file_digests.json"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 8 << 20
_lock = threading.Lock()
_memory: dict[str, str] = {}


def snapshot_revision(folder: Path) -> str | None:
    """``<cache>/models--org--name/snapshots/<commit>`` -> the commit; None for other folders."""
    folder = Path(folder)
    if folder.parent.name == "snapshots" and _COMMIT.fullmatch(folder.name):
        return folder.name
    return None


def _key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"


def file_digest(path: Path, cache_dir: str | None = None) -> str:
    """``sha256:<hex>`` of the file's bytes (what the Hugging Face Hub lists for LFS files), cached.

    ``cache_dir``: where the digests persist between sessions (None: this session only).
    """
    path = Path(path)
    key = _key(path)
    store = Path(cache_dir) / DIGEST_CACHE_FILE if cache_dir else None
    with _lock:
        if key in _memory:
            return _memory[key]
        if store is not None:
            try:
                saved = json.loads(store.read_text(encoding="utf-8"))
                if isinstance(saved, dict) and isinstance(saved.get(key), str):
                    _memory[key] = saved[key]
                    return saved[key]
            except (OSError, ValueError):
                pass
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    digest = "sha256:" + sha.hexdigest()
    with _lock:
        _memory[key] = digest
        if store is not None:
            try:
                saved = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else {}
                saved = saved if isinstance(saved, dict) else {}
                saved = {k: v for k, v in saved.items() if not k.startswith(f"{path.resolve()}|")}  # stale entries
                saved[key] = digest
                os.makedirs(store.parent, exist_ok=True)
                temp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
                temp.write_text(json.dumps(saved, indent=1), encoding="utf-8")
                os.replace(temp, store)
            except OSError:
                pass  # only the persistence is lost: the next session hashes again
    return digest
