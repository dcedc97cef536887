"""The models in memory: a ``ModelCache`` of named slots, and reading a pipeline from its source.

Every model an engine holds lives in a slot of its cache: the artist's model (``base_model.py``), the
ControlNets beside it (``controlnets.py``), the x4 upscaler (``upscale_x4.py``), the tiny preview
decoders (``preview_decoder.py``); a new kind of model (PBR maps, adapters) is a new slot name. The
module that owns a slot says how its entries are read and placed (``Placement``); the cache keeps them,
newest last, drops the oldest beyond a slot's size and gives all the memory back on ``free()``.

Across slots it keeps a memory budget (``memory_budget``): a loader that knows what its next model will take
calls ``make_room`` first, which releases the least recently used entries of *other* slots (never those the
running task still holds) until the weights in memory plus the new ones fit. ``MODEL_MEMORY_SHARE`` of the
device's memory by default: the rest is for activations (and on the CPU, Blender and the system).

Imports torch (through ``devices``); reached only through ``engine.py``, once an engine is asked for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import threading
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from . import devices, revisions, sources
from .errors import EngineError, check_cancel
from .files import variant_for
from .placement import Placement
from .request import ProgressCallback

MODEL_MEMORY_SHARE = 0.7

log = logging.getLogger(__name__)

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
        self.memory_budget: int | None = None  # bytes of weights kept in memory; None: MODEL_MEMORY_SHARE
        self.released: list[tuple[str, Hashable]] = []  # what make_room released, oldest first (reports, tests)
        self._slots: dict[str, dict[Hashable, Any]] = {}
        self._bytes: dict[tuple[str, Hashable], int] = {}  # each entry's weights, measured when it was read
        self._used: dict[tuple[str, Hashable], int] = {}  # when each entry was last used (a counter, not a clock)
        self._clock = 0
        self._on_drop: dict[tuple[str, Hashable], DropCallback] = {}  # (slot, key) -> called when it leaves

    def get(self, slot: str, key: Hashable) -> Any | None:
        """The entry under ``key`` (now the slot's newest), or None."""
        entries = self._slots.get(slot, {})
        if key not in entries:
            return None
        entries[key] = entries.pop(key)
        self._touch(slot, key)
        return entries[key]

    def _touch(self, slot: str, key: Hashable) -> None:
        self._clock += 1
        self._used[(slot, key)] = self._clock

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
        self._bytes[(slot, key)] = weight_bytes(entry)
        self._touch(slot, key)
        if on_drop is not None:
            self._on_drop[(slot, key)] = on_drop
        return entry

    def evict(self, slot: str, key: Hashable | None = None) -> None:
        """Drop the entry under ``key`` (None: every entry of the slot)."""
        entries = self._slots.get(slot, {})
        for dropped in [key] if key is not None else list(entries):
            if dropped in entries:
                entry = entries.pop(dropped)
                self._bytes.pop((slot, dropped), None)
                self._used.pop((slot, dropped), None)
                on_drop = self._on_drop.pop((slot, dropped), None)
                if on_drop is not None:
                    on_drop(dropped, entry)

    def resident_bytes(self, slot: str | None = None) -> int:
        """Bytes of weights of every entry in memory (of ``slot`` only, where given), as measured when read."""
        return sum(size for (entry_slot, _), size in self._bytes.items() if slot is None or entry_slot == slot)

    def budget(self) -> int | None:
        """``memory_budget``, else ``MODEL_MEMORY_SHARE`` of the device's memory (None where unknown)."""
        if self.memory_budget is not None:
            return self.memory_budget
        total = devices.total_memory(self.placement.device)
        return int(total * MODEL_MEMORY_SHARE) if total is not None else None

    def make_room(self, needed: int, *, in_use: Collection[str] = ()) -> list[tuple[str, Hashable]]:
        """Before reading a model of ``needed`` bytes: release the least recently used entries, never one of the
        slots ``in_use`` (the running task's), until the weights in memory plus ``needed`` fit the budget.
        Returns what was released (also appended to ``released``); where even then it does not fit, the
        load goes ahead and the device's own out-of-memory error says so."""
        budget = self.budget()
        if budget is None:
            return []
        released: list[tuple[str, Hashable]] = []
        idle = sorted((used, slot_key) for slot_key, used in self._used.items() if slot_key[0] not in in_use)
        for _, (slot, key) in idle:
            if self.resident_bytes() + needed <= budget:
                break
            log.info("Releasing %s %s (least recently used) to make room for %.2f GB.", slot, key, needed / 1e9)
            self.evict(slot, key)
            released.append((slot, key))
        if released:
            devices.empty_cache(self.placement.device)
            self.released.extend(released)
        return released

    def free(self) -> None:
        """Drop every entry of every slot and give the memory back (gc, then the CUDA/MPS cache); with nothing
        loaded, nothing to give back: a full gc costs a quarter of a second in a process holding torch."""
        loaded = any(self._slots.values())
        for slot in list(self._slots):
            self.evict(slot)
        if loaded:
            devices.empty_cache(self.placement.device)


def weight_bytes(entry: Any) -> int:
    """Bytes of the torch weights an entry holds: a module, a pipeline (its components) or an object holding one
    of those in its attributes (``LoadedModel``, ``LoadedUpscaler``, ...), each tensor counted once."""
    import torch

    seen: set[int] = set()

    def modules(value: Any, depth: int) -> Iterator[torch.nn.Module]:
        if isinstance(value, torch.nn.Module):
            yield value
        elif depth < 3 and isinstance(getattr(value, "components", None), dict):
            for part in value.components.values():
                yield from modules(part, depth + 1)
        elif depth < 3 and hasattr(value, "__dict__") and not isinstance(value, type):
            for part in vars(value).values():
                yield from modules(part, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for part in value.values():
                yield from modules(part, depth + 1)

    total = 0
    for module in modules(entry, 0):
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


_ELEMENT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_bytes(path: Path, element_size: int) -> int:
    """Bytes the floating-point tensors of a ``.safetensors`` file take once loaded at ``element_size`` bytes each
    (others as stored), from its header alone (``make_room``'s estimate before a model is read)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        total += count * (element_size if info["dtype"].startswith(("F", "BF")) else _ELEMENT_BYTES.get(info["dtype"], 4))
    return total


def pipeline_bytes(folder: Path, name: str, dtype: Any) -> int:
    """What the diffusers pipeline in ``folder`` will take in memory loaded as ``dtype`` (the files ``select_files``
    picks for that dtype, from their headers): ``make_room``'s estimate before the weights are read."""
    import torch

    from .file_selection import folder_listing, select_files

    selection = select_files(folder_listing(folder), sources.read_index(folder), name=name,
                             prefer_variant=variant_for(devices.dtype_name(dtype)), allow_pickle=True)
    element = torch.empty((), dtype=dtype).element_size()
    return sum(safetensors_bytes(folder / f, element) for f in selection.files if f.endswith(".safetensors"))


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
    before_load: Callable[[Path], None] | None = None,
) -> tuple[Any, ModelFiles]:
    """Find (download) and load the pipeline for ``source`` on the CPU, in the placement's dtype
    (``pipelines``: the pipeline classes accepted, see ``sources.check_pipeline_index``); ``before_load(folder)``
    runs once the files are on disk, before any weights are read (a diffusers folder or repo id only).

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
    if before_load is not None:
        before_load(folder)
    pipe = sources.load_folder(
        folder,
        name=source.location,
        dtype=placement.dtype,
        allow_pickle=options.allow_pickle,
        prefer_variant=prefer_variant,
        pipelines=pipelines,
    )
    return pipe, where
