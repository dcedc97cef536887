"""What the preferences show between redraws: the last status probe and the running or last jobs.

Module state on purpose: it lives as long as the add-on is loaded, is
computed only when asked (Refresh, an install, a download) and is never
saved, so what it says is never older than this Blender session.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the job modules load when a job starts, not when the add-on is enabled
    from .download import DownloadJob
    from .install import InstallJob
    from .probe import DependencyStatus
    from .torch_build import SystemFacts, TorchBuild


@dataclass
class DependencyState:
    status: DependencyStatus | None = None
    status_error: str | None = None
    probing: threading.Thread | None = None
    facts: SystemFacts | None = None
    torch_build: TorchBuild | None = None  # what Install would pick (with the current preference)
    torch_build_error: str | None = None
    install: InstallJob | None = None  # the running one, or the last one (its result stays visible)
    downloads: dict[str, DownloadJob] = field(default_factory=dict)  # by repo id: running or last
    cache_sizes: dict[str, int] = field(default_factory=dict)  # repo id -> bytes, measured on refresh
    cache_total: int | None = None

    @property
    def installing(self) -> bool:
        return self.install is not None and self.install.running

    def downloading(self, repo_id: str | None = None) -> bool:
        jobs = self.downloads.values() if repo_id is None else [self.downloads.get(repo_id)]
        return any(job is not None and job.running for job in jobs)

    def stop_all(self) -> None:
        """Cancel every running child process (the add-on is being disabled or Blender quits)."""
        if self.install is not None and self.install.running:
            self.install.cancel()
        for job in self.downloads.values():
            if job.running:
                job.cancel()


STATE = DependencyState()


def refresh_state(state: DependencyState, python: str, search_path: list[str], cache_dir: str,
                  torch_override: str, catalog_ids: list[str]) -> None:
    """Recompute everything the preferences show (blocking: seconds, torch is imported in a child).

    Plain values in, so it can run on a worker thread without touching bpy.
    """
    from .hf_cache import cached_repo_ids
    from .probe import ProbeError, run_probe
    from .system_facts import detect

    state.facts = detect()
    update_torch_build(state, torch_override)
    try:
        state.status = run_probe(python, search_path)
        state.status_error = None
    except ProbeError as error:
        state.status, state.status_error = None, str(error)
    state.cache_sizes = {}
    measure_cache(state, cache_dir, [*catalog_ids, *cached_repo_ids(cache_dir)])


def update_torch_build(state: DependencyState, torch_override: str) -> None:
    """What Install would choose, from the facts gathered at the last refresh (instant: no probing)."""
    from .torch_build import UnsupportedPlatform, choose_torch_build

    if state.facts is None:
        state.torch_build, state.torch_build_error = None, None
        return
    try:
        state.torch_build, state.torch_build_error = choose_torch_build(state.facts, torch_override), None
    except UnsupportedPlatform as error:
        state.torch_build, state.torch_build_error = None, str(error)


def measure_cache(state: DependencyState, cache_dir: str, repo_ids: list[str]) -> None:
    """Re-measure ``repo_ids`` in the cache (dropping those gone) and the cache folder's total."""
    from .hf_cache import cached_model, folder_size

    for repo_id in dict.fromkeys(repo_ids):
        cached = cached_model(cache_dir, repo_id)
        if cached is None:
            state.cache_sizes.pop(repo_id, None)
        else:
            state.cache_sizes[repo_id] = cached.size
    state.cache_total = folder_size(cache_dir)
