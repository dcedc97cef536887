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
import json
import sys
from collections.abc import Mapping, Sequence

MARKER = "@@LT_DOWNLOAD "
# Component folders the engine never loads (engine/sources.py SKIPPED_COMPONENTS).
SKIPPED_COMPONENTS = frozenset({"safety_checker", "feature_extractor", "image_encoder"})
CONFIG_SUFFIXES = (".json", ".txt", ".model")
WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")


class SelectionError(Exception):
    pass


def pipeline_components(model_index: Mapping) -> list[str]:
    """The component folders ``model_index.json`` names (``unet``, ``vae``, ``text_encoder``…)."""
    return [
        key for key, value in model_index.items()
        if not key.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] is not None
    ]


def _is_plain_weight(name: str) -> bool:
    """``model.safetensors`` or a shard ``model-00001-of-00002.safetensors`` (no ``.fp16.`` variant)."""
    if not name.endswith(".safetensors"):
        return False
    stem = name[: -len(".safetensors")]
    if "." in stem:
        return False
    base = stem.split("-", 1)[0]
    return base in WEIGHT_STEMS


def _is_fp16_weight(name: str) -> bool:
    return name.endswith(".fp16.safetensors") or (".fp16-" in name and name.endswith(".safetensors"))


def select_files(repo_files: Sequence[str], model_index: Mapping) -> tuple[list[str], list[str]]:
    """The files a diffusers pipeline needs, and notes about choices made.

    ``model_index.json``; each component's configs and tokenizer files; its
    weights as plain (fp32) ``.safetensors``, else the fp16 variant. Never
    pickle files, root-level single-file checkpoints or the components the
    engine skips. The engine loads plain weights whatever its precision (it
    casts), so this set always loads offline.
    Raises ``SelectionError`` when a component has no safetensors weights.
    """
    selected = ["model_index.json"]
    notes: list[str] = []
    by_folder: dict[str, list[str]] = {}
    for path in repo_files:
        folder, _, name = path.partition("/")
        if name and "/" not in name:
            by_folder.setdefault(folder, []).append(name)
    for component in pipeline_components(model_index):
        if component in SKIPPED_COMPONENTS:
            continue
        names = sorted(by_folder.get(component, []))
        if not names:
            raise SelectionError(f"the repository has no {component}/ folder, which model_index.json names")
        configs = [name for name in names if name.endswith(CONFIG_SUFFIXES)]
        plain = [name for name in names if _is_plain_weight(name)]
        fp16 = [name for name in names if _is_fp16_weight(name)]
        has_model_config = "config.json" in names
        if plain:
            weights = plain
        elif fp16:
            weights = fp16
            notes.append(f"{component}: only fp16 weights are published")
        elif has_model_config:
            pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise SelectionError(
                    f"{component} has only pickle weights ({pickles[0]}), which can run code when loaded; "
                    "download it yourself only if you trust it"
                )
            raise SelectionError(f"{component} has a config.json but no weights")
        else:
            weights = []  # scheduler, tokenizer: configs only
        selected += [f"{component}/{name}" for name in configs + weights]
    return selected, notes


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


def download(repo_id: str, cache_dir: str) -> int:
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
        files, notes = select_files([info.filename for info in listing], model_index)
        chosen = [info for info in listing if info.filename in set(files)]
        emit("plan", files=len(chosen), total=sum(info.file_size or 0 for info in chosen),
             to_download=sum(info.file_size or 0 for info in chosen if info.will_download), notes=notes)
        path = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=files)
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
    return download(request["repo_id"], request["cache_dir"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
