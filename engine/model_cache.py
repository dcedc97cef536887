"""The models in memory: a ``ModelCache`` of named slots, and reading a pipeline from its source.

Every model an engine holds lives in a slot of its cache: the artist's model (``base_model.py``), the
ControlNets beside it (``controlnets.py``), the x4 upscaler (``upscale_x4.py``), the tiny preview
decoders (``preview_decoder.py``); a new kind of model (PBR maps, adapters) is a new slot name. The
module that owns a slot says how its entries are read and placed (``Placement``); the cache keeps them,
newest last, drops the oldest beyond a slot's size and gives all the memory back on ``free()``.

Imports torch (through ``devices``); reached only through ``engine.py``, once an engine is asked for.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from . import devices, revisions, sources
from .errors import EngineError, check_cancel
from .files import variant_for
from .placement import Placement
from .request import ProgressCallback

Entry = TypeVar("Entry")
DropCallback = Callable[[Hashable, Any], None]


class ModelCache:
    """Models in memory by slot: each slot keeps up to ``keep`` entries by key, oldest first.

    ``placement`` is where every entry runs; ``loads`` counts the entries read per slot.
    Not thread-safe on its own: the engine calls it under its lock.
    """

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.loads: Counter[str] = Counter()
        self._slots: dict[str, dict[Hashable, Any]] = {}
        self._on_drop: dict[tuple[str, Hashable], DropCallback] = {}  # (slot, key) -> called when it leaves

    def get(self, slot: str, key: Hashable) -> Any | None:
        """The entry under ``key`` (now the slot's newest), or None."""
        entries = self._slots.get(slot, {})
        if key not in entries:
            return None
        entries[key] = entries.pop(key)
        return entries[key]

    def newest(self, slot: str) -> Any | None:
        """The slot's newest entry, or None when it is empty. Safe to call without the engine's lock (the UI
        asks what is loaded while a run frees or loads): the entries are copied in one step."""
        entries = list(self._slots.get(slot, {}).values())
        return entries[-1] if entries else None

    def entries(self, slot: str) -> Mapping[Hashable, Any]:
        """The slot's entries by key, oldest first (a read-only view)."""
        return MappingProxyType(self._slots.setdefault(slot, {}))

    def load(
        self,
        slot: str,
        key: Hashable,
        read: Callable[[], Entry],
        *,
        keep: int | None = 1,
        on_drop: DropCallback | None = None,
    ) -> Entry:
        """The entry under ``key``, else ``read()``'s, stored as the slot's newest.

        Before reading, the oldest entries are dropped down to ``keep - 1`` (None: no limit), so an old
        model's memory is free before a new one is read. ``on_drop(key, entry)`` is called when this entry
        leaves the cache (``keep``, ``evict`` or ``free``).
        """
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1 or None; got {keep!r}.")
        cached = self.get(slot, key)
        if cached is not None:
            return cached
        entries = self._slots.setdefault(slot, {})
        while keep is not None and len(entries) >= keep:
            self.evict(slot, next(iter(entries)))
        entry = read()
        self.loads[slot] += 1
        entries[key] = entry
        if on_drop is not None:
            self._on_drop[(slot, key)] = on_drop
        return entry

    def evict(self, slot: str, key: Hashable | None = None) -> None:
        """Drop the entry under ``key`` (None: every entry of the slot)."""
        entries = self._slots.get(slot, {})
        for dropped in [key] if key is not None else list(entries):
            if dropped in entries:
                entry = entries.pop(dropped)
                on_drop = self._on_drop.pop((slot, dropped), None)
                if on_drop is not None:
                    on_drop(dropped, entry)

    def free(self) -> None:
        """Drop every entry of every slot and give the memory back (gc, then the CUDA/MPS cache); with nothing
        loaded, nothing to give back: a full gc costs a quarter of a second in a process holding torch."""
        loaded = any(self._slots.values())
        for slot in list(self._slots):
            self.evict(slot)
        if loaded:
            devices.empty_cache(self.placement.device)


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's weights were read from (``LoadedModelInfo.files/origin/cache_dir``, the recipe)."""

    files: str
    origin: str
    cache_dir: str | None = None
    revision: str | None = None  # the hub commit or the checkpoint's sha256 (revisions.py)

    def recipe_fields(self) -> dict[str, Any]:
        fields = {"model_files": self.files, "model_origin": self.origin, "model_cache": self.cache_dir or ""}
        return fields | ({"model_revision": self.revision} if self.revision else {})


@contextlib.contextmanager
def loading(what: str, advice: str) -> Iterator[None]:
    """A loader's error as an ``EngineError`` saying that ``what`` could not be loaded, why, and ``advice``.

    Out-of-memory passes through (``devices.oom_as_engine_error`` turns it into ``OutOfMemoryError``).
    """
    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        if devices.is_oom(error):
            raise
        raise EngineError(f"{what} could not be loaded ({type(error).__name__}: {error}); {advice}") from error


def read_pipeline(
    source: sources.ModelSource,
    placement: Placement,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
    pipelines: tuple[str, ...] = sources.SUPPORTED_PIPELINES,
) -> tuple[Any, ModelFiles]:
    """Find (download) and load the pipeline for ``source`` on the CPU, in the placement's dtype
    (``pipelines``: the pipeline classes accepted, see ``sources.check_pipeline_index``).

    Returns the pipeline and where its weights came from, with their revision (see ``revisions``).
    """
    options = placement.options
    prefer_variant = variant_for(placement.dtype_name)
    if source.kind == "SINGLE_FILE":
        pipe = sources.load_single_file(
            Path(source.location),
            dtype=placement.dtype,
            cache_dir=options.cache_dir,
            offline=options.offline,
            read_cache_dirs=options.read_cache_dirs,
        )
        revision = revisions.file_digest(Path(source.location), options.cache_dir)
        return pipe, ModelFiles(source.location, "SINGLE_FILE", revision=revision)
    folder = Path(source.location)
    where = ModelFiles(source.location, "FOLDER")
    if source.kind == "HUB":
        found = sources.resolve_hub(
            source.location,
            cache_dir=options.cache_dir,
            offline=options.offline,
            prefer_variant=prefer_variant,
            allow_pickle=options.allow_pickle,
            read_cache_dirs=options.read_cache_dirs,
            on_progress=on_progress,
            cancel_event=cancel_event,
            pipelines=pipelines,
        )
        folder = found.folder
        where = ModelFiles(str(folder), "DOWNLOAD" if found.downloaded else "CACHE", found.cache_dir,
                           revisions.snapshot_revision(folder))
    check_cancel(cancel_event)
    pipe = sources.load_folder(
        folder,
        name=source.location,
        dtype=placement.dtype,
        allow_pickle=options.allow_pickle,
        prefer_variant=prefer_variant,
        pipelines=pipelines,
    )
    return pipe, where
