"""A model download: ``download_worker.py`` in a child process, watched from a thread.

Progress is the growth of the model's folder in the cache measured against the
size the worker announces before fetching: it works the same whichever
transfer backend huggingface_hub picks, and needs nothing from inside the child.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..engine.files import cpu_bf16_native, run_dtype, variant_for
from .hf_cache import cached_model, folder_size, repo_folder, validate_repo_id
from .probe import format_bytes
from .process import ProcessJob, StreamingProcess, child_environment

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "download_worker.py")
MARKER = "@@LT_DOWNLOAD "
POLL_SECONDS = 0.5


def download_variant(device: str, precision: str, devices: Sequence) -> str | None:
    """The weights variant the engine will load with the preferences' ``device`` and ``precision``.

    ``devices``: the probed devices (``probe.Device``: type, name, capability, CPU features); ``AUTO`` takes
    CUDA, then MPS, then the CPU, as the engine does; a CPU with native bf16 runs Precision Auto in bf16
    (unless ``ONEDNN_MAX_CPU_ISA`` in Blender's environment caps oneDNN below it), as ``engine/devices.py``
    decides. Unprobed (empty): as a CPU without native bf16 (Auto: the plain files, which run any precision).
    """
    order = {"AUTO": ("cuda", "mps", "cpu"), "CUDA": ("cuda",), "MPS": ("mps",), "CPU": ("cpu",)}[device]
    found = {d.type: d for d in reversed(devices)}  # the first of each type
    kind = next((t for t in order if t in found), "cpu")
    chosen = found.get(kind)
    name = chosen.name if chosen is not None else ""
    capability = getattr(chosen, "capability", None) or ""
    if kind == "cuda":
        bf16_native = capability.split(".", 1)[0].isdigit() and int(capability.split(".", 1)[0]) >= 8
    else:
        features = getattr(chosen, "features", None) or ()
        bf16_native = kind == "cpu" and cpu_bf16_native(features, os.environ.get("ONEDNN_MAX_CPU_ISA", ""))
    return variant_for(run_dtype(precision, kind, name, bf16_native))


def download_command(python: str, search_path: Sequence[str], repo_id: str, cache_dir: str,
                     variant: str | None = None) -> list[str]:
    """``variant``: the weights the engine will load on this computer (``engine/files.variant_for``)."""
    request = json.dumps({"path": list(search_path), "repo_id": repo_id, "cache_dir": cache_dir, "variant": variant})
    return [python, "-I", "-X", "utf8", WORKER, request]  # see probe.probe_command


def error_message(kind: str, repo_id: str, detail: str) -> str:
    """What the artist reads for each way a download fails."""
    page = f"https://huggingface.co/{repo_id}"
    if kind == "gated":
        return (f"{repo_id} is gated: open {page}, accept its terms, then log in to Hugging Face "
                "(`hf auth login` in a terminal, or set the HF_TOKEN environment variable) and download again.")
    if kind == "not_found":
        return (f"{repo_id} was not found on the Hugging Face Hub (check the spelling; a private model "
                "needs a Hugging Face login).")
    if kind == "offline":
        return (f"{repo_id} is not downloaded and Hugging Face's offline mode is on (HF_HUB_OFFLINE is set "
                "in the environment Blender was started from), so it cannot be fetched. Start Blender without "
                "HF_HUB_OFFLINE to download it, or set Model to a model folder or .safetensors file.")
    if kind == "network":
        return f"Could not reach huggingface.co to download {repo_id}: {detail}"
    if kind == "disk_full":
        return f"The disk is full: {repo_id} did not fit. Free some space or choose another Model Cache folder."
    if kind == "missing_dependency":
        return ("Downloading needs the huggingface_hub package: click Install Dependencies first "
                f"({detail}).")
    if kind == "unsupported":
        return f"{repo_id} cannot be used by Latent Textures: {detail}."
    return f"Downloading {repo_id} failed: {detail}"


@dataclass
class DownloadResult:
    ok: bool
    cancelled: bool = False
    message: str = ""
    path: str | None = None


@dataclass
class DownloadProgress:
    phase: str = "Starting…"
    done_bytes: int = 0
    total_bytes: int | None = None  # what still had to be fetched when the download started
    notes: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)

    def text(self) -> str:
        if self.total_bytes:
            return f"{format_bytes(self.done_bytes)} of {format_bytes(self.total_bytes)}"
        return self.phase


class DownloadJob(ProcessJob):
    """One model download. ``run()`` blocks; ``start()`` runs it on a thread; ``cancel()`` from anywhere."""

    THREAD_NAME = "latent_textures_download"

    def __init__(self, python: str, search_path: Sequence[str], repo_id: str, cache_dir: str,
                 env: Mapping[str, str] | None = None, variant: str | None = None) -> None:
        super().__init__()
        self.repo_id = validate_repo_id(repo_id)
        self.cache_dir = cache_dir
        self.variant = variant
        self.command = download_command(python, search_path, self.repo_id, cache_dir, variant)
        self.env = child_environment(env if env is not None else os.environ)
        self.progress = DownloadProgress()
        self.lines: deque[str] = deque(maxlen=200)
        self.result: DownloadResult | None = None
        self._events: list[dict] = []
        self._process = StreamingProcess(self.command, env=self.env)
        self._baseline = 0

    def run(self) -> DownloadResult:
        try:
            self.result = self._run()
        except Exception as error:  # an OS error or a bug: one line for the artist, details on the console
            traceback.print_exc()
            self.result = DownloadResult(False, message=f"Downloading {self.repo_id} failed "
                                                        f"({type(error).__name__}): {error}")
        return self.result

    def _run(self) -> DownloadResult:
        os.makedirs(self.cache_dir, exist_ok=True)
        folder = repo_folder(self.cache_dir, self.repo_id)
        self._baseline = folder_size(folder) if os.path.isdir(folder) else 0
        watcher = threading.Thread(target=self._watch, args=(folder,), daemon=True)
        watcher.start()
        code = self._process.run(self._on_line)
        watcher.join(2 * POLL_SECONDS)
        if self._cancel.is_set():
            return DownloadResult(False, cancelled=True, message=(
                f"Download of {self.repo_id} cancelled. The part already fetched stays in the cache "
                "(Remove deletes it)."))
        for event in reversed(self._events):
            if event["kind"] == "error":
                detail = event.get("message", "")
                return DownloadResult(False, message=error_message(event.get("error_kind", "error"),
                                                                   self.repo_id, detail))
            if event["kind"] == "done":
                cached = cached_model(self.cache_dir, self.repo_id)
                if cached is None or not cached.complete:
                    problem = cached.problem if cached is not None else "nothing was written"
                    return DownloadResult(False, message=f"{self.repo_id} is incomplete in the cache: {problem}.")
                self.progress.phase = "Downloaded"
                return DownloadResult(True, message=f"{self.repo_id} is ready ({format_bytes(cached.size)}).",
                                      path=event.get("path"))
        tail = " | ".join(list(self.lines)[-3:]) or "no output"
        return DownloadResult(False, message=f"Downloading {self.repo_id} failed (exit {code}): {tail}")

    def _on_line(self, line: str) -> None:
        if not line.startswith(MARKER):
            self.lines.append(line)
            print(f"[latent_textures download] {line}", file=sys.stderr)
            return
        try:
            event = json.loads(line[len(MARKER):])
        except ValueError:
            self.lines.append(line)
            return
        self._events.append(event)
        if event["kind"] == "status":
            self.progress.phase = event.get("message", self.progress.phase)
        elif event["kind"] == "plan":
            self.progress.total_bytes = int(event.get("to_download") or 0) or None
            self.progress.notes = list(event.get("notes", ()))
            self.progress.phase = f"Downloading {event.get('files')} files"
            # Measure from here: the index file fetched during the lookup is not part of the plan.
            folder = repo_folder(self.cache_dir, self.repo_id)
            self._baseline = folder_size(folder) if os.path.isdir(folder) else 0

    def _watch(self, folder: str) -> None:
        while self.result is None and not self._cancel.is_set() and self._process.alive():
            if self.progress.total_bytes and os.path.isdir(folder):
                self.progress.done_bytes = max(0, folder_size(folder) - self._baseline)
            time.sleep(POLL_SECONDS)
