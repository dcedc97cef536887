"""One ``.safetensors`` header, read without its weights.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a
JSON header naming every tensor with its dtype, shape and byte range (plus an
optional ``__metadata__`` of strings). That is all this module reads: a
checkpoint of 7 GB costs one ``open`` and a few KB. A truncated or corrupt file
raises ``HeaderError`` saying what is wrong.

Plain Python: no bpy, no torch, no safetensors package.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


class HeaderError(ValueError):
    """A ``.safetensors`` file whose header cannot be read: too short, truncated or corrupt."""


def _read_header_bytes(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """The header's JSON (undecoded) and the bytes of tensor data the file holds after it."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise HeaderError(f"the file has only {size} bytes (truncated or empty)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise HeaderError("the header length is implausible (not a safetensors file, or corrupt)")
        if 8 + length > size:
            raise HeaderError(f"the header needs {length} bytes but the file ends after {size - 8} (truncated)")
        raw = handle.read(length)
    return raw, size - 8 - length


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole JSON header of a ``.safetensors`` file (tensor name -> dtype/shape/data_offsets, ``__metadata__``).

    Reads 8 bytes plus the header, never the weights. Raises ``HeaderError`` saying what is wrong when
    the file is too short, truncated or not safetensors. (A scan uses ``HeaderText``: parsing every
    entry of a 2,500-tensor header costs more than classifying it.)
    """
    raw, available = _read_header_bytes(path)
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise HeaderError(f"the header is not valid JSON (corrupt): {error}") from error
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object (corrupt)")
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            data_end = max(data_end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as error:
            raise HeaderError(f"the tensor {name!r} has no valid data_offsets (corrupt)") from error
    if data_end > available:
        raise HeaderError(f"the tensors need {data_end} bytes of data but the file holds {available} (truncated)")
    return header


def tensor_shapes(header: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(info.get("shape", ())) for name, info in header.items() if name != "__metadata__"}


_DATA_END = re.compile(rb'"data_offsets"\s*:\s*\[\s*\d+\s*,\s*(\d+)\s*\]')
_ENTRY_SHAPE = rb'"\s*:\s*\{[^{}]*?"shape"\s*:\s*\[([^\]]*)\]'
_CROSS_ATTENTION_ENTRY = re.compile(rb'"([^"]*attn2[._]to_k[^"]*)' + _ENTRY_SHAPE)
_LORA_NAME = re.compile(rb'(?:lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up)\.weight"')


class HeaderText:
    """A safetensors header as its JSON bytes: names found with substring and regex searches (C speed),
    only the few shapes and the metadata that decide the classification parsed."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self._metadata: dict[str, Any] | None = None

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, Any] | None = None) -> HeaderText:
        header: dict[str, Any] = {name: {"shape": list(shape)} for name, shape in shapes.items()}
        if metadata:
            header["__metadata__"] = dict(metadata)
        return cls(json.dumps(header).encode())

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> HeaderText:
        """Read and check a file's header (``HeaderError`` when truncated or corrupt)."""
        text, available = _read_header_bytes(path)
        stripped = text.strip()
        if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            read_safetensors_header(path)  # raises, saying what is wrong
        # A complete file's last tensor ends exactly where the file does: one substring search says so.
        if text.rfind(b",%d]" % available) >= 0 or text.rfind(b", %d]" % available) >= 0:
            return cls(text)
        ends = [int(end) for end in _DATA_END.findall(text)]
        if not ends:
            read_safetensors_header(path)  # the precise complaint (or: a valid header without tensors)
        elif max(ends) > available:
            raise HeaderError(
                f"the tensors need {max(ends)} bytes of data but the file holds {available} (truncated)"
            )
        return cls(text)

    def has_prefix(self, *prefixes: str) -> bool:
        return any(b'"' + prefix.encode() in self.text for prefix in prefixes)

    def has(self, name: str) -> bool:
        return b'"' + name.encode() + b'"' in self.text

    def shape(self, name: str) -> tuple[int, ...] | None:
        found = re.search(b'"' + re.escape(name.encode()) + _ENTRY_SHAPE, self.text)
        return _dims(found.group(1)) if found else None

    def has_lora_weights(self) -> bool:
        return _LORA_NAME.search(self.text) is not None

    def context_width(self, prefix: str) -> int | None:
        """The cross-attention input width (the text encoder's) of the first ``attn2.to_k`` under ``prefix``."""
        for found in _CROSS_ATTENTION_ENTRY.finditer(self.text):
            name, shape = found.group(1).decode("utf-8", "replace"), _dims(found.group(2))
            if not name.startswith(prefix) or len(shape) != 2:
                continue
            if name.endswith(".weight") and any(up in name for up in ("lora_up", "lora_B", "lora.up")):
                continue  # the up projection's input is the rank, not the text width
            return shape[1]
        return None

    def metadata(self) -> dict[str, Any]:
        """``__metadata__`` (trainer notes, all strings), parsed once; {} when absent or unreadable."""
        if self._metadata is None:
            self._metadata = {}
            start = self.text.find(b'"__metadata__"')
            if start >= 0:
                brace = self.text.find(b"{", start)
                end = self.text.find(b"}", brace)  # metadata values are strings: find the closing brace
                while end >= 0:
                    try:
                        value = json.loads(self.text[brace : end + 1])
                    except ValueError:
                        end = self.text.find(b"}", end + 1)  # a "}" inside a string: try the next one
                        continue
                    self._metadata = value if isinstance(value, dict) else {}
                    break
        return self._metadata


def _dims(text: bytes) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(b",") if part.strip())
