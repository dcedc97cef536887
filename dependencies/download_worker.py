"""Download one model from the Hugging Face Hub: run as a script by Blender's Python in a child process.

    python -I -X utf8 download_worker.py '{"path": [...], "repo_id": "org/name", "cache_dir": "..."}'

A child process, so that Cancel can stop it at any byte (a thread cannot be
stopped) and huggingface_hub is never imported into Blender. It prints one JSON
event per line, prefixed ``@@LT_DOWNLOAD``; ``download.DownloadJob`` reads them.
The token for gated models is whatever huggingface_hub finds itself (HF_TOKEN
or a saved ``hf auth login``): it is never passed, printed or stored here.
Standard library only at the top, and no imports from the add-on.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence

MARKER = "@@LT_DOWNLOAD "
# The one file-selection rule, shared with the engine (standard library only, loaded by path:
# this script runs isolated, without the add-on on sys.path).
FILES_MODULE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine", "files.py")


def load_file_rule():
    """``engine/files.py`` as a module of its own (registered: its dataclasses look themselves up)."""
    name = "latent_textures_file_rule"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FILES_MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


files = load_file_rule()


class SelectionError(Exception):
    pass


def select_files(repo_files: Sequence[str], model_index: Mapping, variant: str | None) -> tuple[list[str], list[str]]:
    """The files the engine will load on the device that runs it, and notes about the choice.

    ``variant``: ``fp16`` or None, see ``files.variant_for``. Never pickle files or the
    skipped components. ``SelectionError`` when no set of files makes the pipeline.
    """
    try:
        selection = files.select_files(repo_files, dict(model_index), name="the model", prefer_variant=variant,
                                       allow_pickle=False)
    except files.FileSelectionError as error:
        if error.kind == "pickle":
            raise SelectionError(f"{error.component} has only pickle weights, which can run code when loaded; "
                                 "download it yourself only if you trust it") from None
        raise SelectionError(str(error)) from None
    notes = []
    if selection.variant != variant:
        chosen = f"{selection.variant} weights" if selection.variant else "full-precision weights"
        notes.append(f"no {variant or 'full-precision'} weights are published: {chosen}")
    return list(selection.files), notes


def emit(kind: str, **fields) -> None:
    sys.stdout.write(MARKER + json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


def classify_error(error: BaseException) -> str:
    """A stable kind for the parent (which words the message for the artist)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if "GatedRepoError" in names:
        return "gated"
    if names & {"RepositoryNotFoundError", "RevisionNotFoundError"}:
        return "not_found"
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}:
        return "offline"
    if names & {"ConnectError", "ConnectTimeout", "ConnectionError", "TimeoutException", "DryRunError",
                "ReadTimeout", "NetworkError"}:
        return "network"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "disk_full"
    if "HfHubHTTPError" in names:
        return "http"
    return "error"


def download(repo_id: str, cache_dir: str, variant: str | None = None) -> int:
    try:
        import huggingface_hub
        from huggingface_hub import constants, hf_hub_download, snapshot_download
    except ImportError as error:
        emit("error", error_kind="missing_dependency", message=str(error))
        return 2
    try:
        if constants.HF_HUB_OFFLINE:
            # HF_HUB_OFFLINE=1 in the environment: only what is cached counts.
            path = snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)
            emit("done", path=path, cached=True)
            return 0
        emit("status", message=f"Looking up {repo_id}…", hub_version=huggingface_hub.__version__)
        index_file = hf_hub_download(repo_id, "model_index.json", cache_dir=cache_dir)
        with open(index_file, encoding="utf-8") as handle:
            model_index = json.load(handle)
        listing = snapshot_download(repo_id, cache_dir=cache_dir, dry_run=True)
        wanted, notes = select_files([info.filename for info in listing], model_index, variant)
        chosen = [info for info in listing if info.filename in set(wanted)]
        emit("plan", files=len(chosen), total=sum(info.file_size or 0 for info in chosen),
             to_download=sum(info.file_size or 0 for info in chosen if info.will_download), notes=notes)
        path = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=wanted)
        emit("done", path=path, cached=False)
        return 0
    except SelectionError as error:
        emit("error", error_kind="unsupported", message=str(error))
    except Exception as error:  # every failure becomes one event the parent can word
        emit("error", error_kind=classify_error(error), message=f"{type(error).__name__}: {error}")
    return 1


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    sys.path[:] = list(request["path"])
    return download(request["repo_id"], request["cache_dir"], request.get("variant"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
