"""The Hugging Face hub: which caches a repo id is looked up in, downloads with progress and cancel.

A repo id is read from the first cache that holds it (read-only, no network); else, unless
offline, it is downloaded into the download cache with ``ProgressEvent(stage="DOWNLOAD")``s, and
when the hub cannot be asked, whatever a cache holds is used (like diffusers).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError, GenerationCancelled, ModelNotFoundError
from .file_selection import folder_listing
from .request import ProgressEvent

log = logging.getLogger(__name__)

DOWNLOAD_REPORT_INTERVAL = 0.25  # seconds between download progress events

ProgressCallback = Callable[[ProgressEvent], None]


def hub_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the hub could not be reached or answered badly" (not: disk full, bad model)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [
        HfHubHTTPError,
        OfflineModeIsEnabled,
        LocalEntryNotFoundError,
        ConnectionError,
        TimeoutError,
    ]
    # The HTTP client's own transport errors (which client depends on the huggingface_hub version).
    for module_name, error_name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(module_name), error_name))
    return tuple(errors)


def hub_offline(offline: bool) -> bool:
    """Offline if asked, or if ``HF_HUB_OFFLINE`` is set in the environment (Blender's offline mode may set it)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return offline or env in ("1", "ON", "YES", "TRUE")


def offline_reason(offline: bool) -> str:
    return "offline mode is on" if offline else "HF_HUB_OFFLINE is set in the environment"


def cache_label(cache_dir: str | None) -> str:
    from huggingface_hub import constants

    return cache_dir or constants.HF_HUB_CACHE


def cached_snapshot(repo_id: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id``'s main revision, or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def lookup_caches(cache_dir: str | None, read_cache_dirs: Sequence[str] | None) -> list[str]:
    """The caches a repo id is looked up in, in order: ``read_cache_dirs`` (None: the download cache, then
    the standard Hugging Face cache), with the download cache ``cache_dir`` last when not among them."""
    from huggingface_hub import constants

    download = cache_dir or constants.HF_HUB_CACHE
    wanted = list(read_cache_dirs) if read_cache_dirs is not None else [download, constants.HF_HUB_CACHE]
    wanted.append(download)
    return list(dict.fromkeys(os.path.normpath(os.path.expanduser(d)) for d in wanted if d))


@dataclass(frozen=True)
class HubFolder:
    """Where a repo id's pipeline was found: its snapshot folder, the cache holding it, and whether it was
    downloaded just now."""

    folder: Path
    cache_dir: str
    downloaded: bool = False


class _DownloadWatch:
    """Reports download progress as ProgressEvent(stage="DOWNLOAD") and aborts downloads on cancel.

    huggingface_hub updates its progress bars from every download thread; the bar
    class made here ignores what they display and, at most every ``interval``
    seconds, measures the bytes that landed in the repo's ``blobs`` folder. Once a
    cancel is seen every further update raises, so each download thread stops.
    """

    def __init__(
        self,
        blobs: Path,
        total: int,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
        interval: float | None = None,
    ) -> None:
        self.blobs = blobs
        self.total = total
        self.on_progress = on_progress
        self.cancel_event = cancel_event
        self.interval = DOWNLOAD_REPORT_INTERVAL if interval is None else interval
        self.cancelled = False
        self._start = self._bytes()
        self._last = 0.0
        self._lock = threading.Lock()

    def _bytes(self) -> int:
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.blobs) if entry.is_file())
        except FileNotFoundError:
            return 0

    def poll(self, force: bool = False) -> None:
        if self.cancelled or (self.cancel_event is not None and self.cancel_event.is_set()):
            self.cancelled = True
            raise GenerationCancelled()
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self._last < self.interval):
            return
        with self._lock:
            self._last = now
            done = min(max(self._bytes() - self._start, 0), self.total)
            try:
                self.on_progress(ProgressEvent(step=done, total=self.total, preview=None, stage="DOWNLOAD"))
            except GenerationCancelled:
                self.cancelled = True
                raise

    def bar_class(self) -> type:
        from tqdm.auto import tqdm

        watch = self

        class _Bar(tqdm):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                watch.poll()
                return None

        return _Bar


def resolve_hub_files(
    repo_id: str,
    select: Callable[[list[str]], list[str]],
    *,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
) -> Path:
    """Like ``sources.resolve_hub`` for a repo that is not a pipeline (a ControlNet, a LoRA).

    ``select`` gets the repo's file list and returns the files to download (raising a
    ``EngineError``/``UnsafeModelFormatError`` if none fit). The first cache whose snapshot holds what
    ``select`` picks from it is used without asking the hub; offline, any cached snapshot is.
    """
    caches = lookup_caches(cache_dir, read_cache_dirs)
    for cache in caches:
        folder = cached_snapshot(repo_id, cache)
        if folder is None:
            continue
        try:
            wanted = select(folder_listing(folder))
        except EngineError:
            continue
        if wanted and all((folder / name).exists() for name in wanted):
            return folder
    return resolve_hub_with(
        repo_id,
        caches=caches,
        cache_dir=cache_dir,
        offline=offline,
        download=lambda: download_files(
            repo_id, select, cache_dir=cache_dir, on_progress=on_progress, cancel_event=cancel_event
        ),
    ).folder


def download_files(
    repo_id: str,
    select: Callable[[list[str]], list[str]],
    *,
    cache_dir: str | None,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> Path:
    """Download the files ``select`` picks from ``repo_id``'s file list, with progress; return the snapshot."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id)
    return download_patterns(
        repo_id, select([s.rfilename for s in info.siblings or []]), cache_dir, on_progress, cancel_event
    )


def download_patterns(
    repo_id: str,
    patterns: list[str],
    cache_dir: str | None,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> Path:
    from huggingface_hub import snapshot_download

    plan = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns, dry_run=True)
    total = sum(item.file_size or 0 for item in plan if item.will_download)
    blobs = Path(cache_label(cache_dir)) / ("models--" + repo_id.replace("/", "--")) / "blobs"
    watch = _DownloadWatch(blobs, total, on_progress, cancel_event)
    if total:
        watch.poll(force=True)
    folder = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns, tqdm_class=watch.bar_class())
    if total:
        watch.poll(force=True)
    return Path(folder)


def resolve_hub_with(
    repo_id: str,
    *,
    caches: list[str],
    cache_dir: str | None,
    offline: bool,
    download: Callable[[], Path],
    offline_fallback: bool = True,
) -> HubFolder:
    """The hub rules for every repo: offline -> the caches only; online -> ``download()``, else the caches."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if hub_offline(offline):
        for cache in caches if offline_fallback else ():
            folder = cached_snapshot(repo_id, cache)
            if folder is not None:
                return HubFolder(folder, cache)
        raise ModelNotFoundError(
            f"{repo_id} is not in the model caches ({', '.join(caches)}) and {offline_reason(offline)}; "
            "go online once (turn off offline mode / allow online access) so it can be downloaded, "
            "or choose a local model folder or .safetensors file."
        )
    try:
        return HubFolder(download(), cache_label(cache_dir), downloaded=True)
    except hub_errors() as error:  # includes GatedRepoError and RepositoryNotFoundError
        for cache in caches:
            folder = cached_snapshot(repo_id, cache)
            if folder is not None:
                log.warning("Using the cached %s (%s): the hub could not be asked (%s)", repo_id, cache, error)
                return HubFolder(folder, cache)  # like diffusers: fall back to what is cached
        if isinstance(error, GatedRepoError):
            raise ModelNotFoundError(
                f"{repo_id} is gated: accept its licence on huggingface.co and log in (hf auth login) to download it."
            ) from error
        if isinstance(error, RepositoryNotFoundError):
            raise ModelNotFoundError(
                f"There is no Hugging Face model {repo_id!r} (or it is private); check the repo id."
            ) from error
        raise ModelNotFoundError(
            f"Could not download {repo_id} from huggingface.co ({type(error).__name__}) and it is not cached in "
            f"{', '.join(caches)}; check the internet connection, or choose a local model."
        ) from error
