"""Engine exceptions. Each message is user-facing: one clear sentence that says what to do."""

from __future__ import annotations

import threading


class EngineError(Exception):
    """Base class for every error the engine raises on purpose (bad input raises ``ValueError``)."""


class GenerationCancelled(EngineError):
    """The caller cancelled the run (from the progress callback or through the cancel event)."""

    def __init__(self, message: str = "Generation cancelled.") -> None:
        super().__init__(message)


class ModelNotFoundError(EngineError):
    """The model is not where it was said to be, or it would need a download that is not allowed."""


class UnsafeModelFormatError(EngineError):
    """A pickle-based weights file (.ckpt, .bin, .pt, .pth) was refused."""


class OutOfMemoryError(EngineError):
    """The device ran out of memory; the message suggests how to fit the run."""


class ViewsDoNotFitError(OutOfMemoryError):
    """Whole Object SYNC: not even one view per group fits the memory beside every view's share; refused before
    the first step, the message names the most views that fit (``view_groups.py``)."""


def check_cancel(cancel_event: threading.Event | None) -> None:
    """Raise ``GenerationCancelled`` once ``cancel_event`` is set (checked at every step boundary)."""
    if cancel_event is not None and cancel_event.is_set():
        raise GenerationCancelled()
