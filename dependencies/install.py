"""Install packages into a staging folder with pip, check them, then swap the staging folder into place.

The previous install is never touched until the new one is complete: a failed
or cancelled pip run, a package missing afterwards, or a torch that does not
import leaves the old folder exactly as it was. The swap itself is two renames
in one parent folder (``site-packages`` -> ``site-packages.old``,
``site-packages-staging`` -> ``site-packages``), undone if the second fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .pip import (
    PackageSource, PipInstall, PipProgress, ensurepip_commands, error_summary, parse_pip_version,
    pip_check_command, pip_environment, pip_install_command,
)
from .process import ProcessJob, StreamingProcess, child_environment, hidden_window_flags
from .requirements import ENGINE_PINS, SUPPORTED_BLENDERS, SUPPORTED_PYTHON, TORCH, normalize_name, requirement_name
from .torch_build import TorchBuild

GIB = 1024**3
OLD_SUFFIX = ".old"


class InstallError(Exception):
    """A reason not to start, or why the install failed (one message for the artist)."""


@dataclass(frozen=True)
class InstallPlan:
    """Everything one install needs; build it with ``engine_plan`` or directly (tests, local wheels)."""

    python: str
    target: str  # the folder the engine imports from (``site-packages``)
    staging: str  # pip's --target; becomes ``target`` on success
    temp_dir: str  # pip's TMPDIR, beside the target (same disk, not a small /tmp)
    requirements: tuple[str, ...]
    source: PackageSource = field(default_factory=PackageSource)
    torch_build: TorchBuild | None = None
    min_free_bytes: int = 0
    # Checking that the new torch imports: the path to check with (empty: skip the check).
    verify_path: tuple[str, ...] = ()


def check_python(version: Sequence[int]) -> None:
    """Refuse a Python the pins were not made for, before pip fails on it minutes later."""
    if tuple(version[:2]) != SUPPORTED_PYTHON:
        wanted = ".".join(map(str, SUPPORTED_PYTHON))
        raise InstallError(
            f"This Blender runs Python {version[0]}.{version[1]}; the engine's packages are pinned for "
            f"Python {wanted} ({SUPPORTED_BLENDERS}). Use one of those Blender versions."
        )


def engine_plan(
    python: str,
    target: str,
    staging: str,
    temp_dir: str,
    build: TorchBuild,
    source: PackageSource | None = None,
    search_path: Sequence[str] = (),
) -> InstallPlan:
    """The pinned engine packages with the chosen torch build (``source`` None: PyPI)."""
    source = source if source is not None else PackageSource()
    requirements = tuple(build.requirement if pin.name == TORCH else pin.requirement for pin in ENGINE_PINS)
    if build.extra_index_url and not source.no_index:
        # --extra-index-url, not --index-url: diffusers & co. come from PyPI. The
        # torch requirement names the local version (+cu130), which only PyTorch's
        # index has, so there is no ambiguity about where torch comes from.
        source = PackageSource(source.index_url, (*source.extra_index_urls, build.extra_index_url),
                               source.find_links, source.no_index)
    return InstallPlan(
        python=python, target=target, staging=staging, temp_dir=temp_dir, requirements=requirements,
        source=source, torch_build=build,
        # Wheels are unpacked (2-3x their size) next to the pip cache's copy.
        min_free_bytes=3 * build.variant.download_bytes + GIB,
        verify_path=tuple(search_path),
    )


def free_space_problem(folder: str, needed: int) -> str | None:
    """A message when the disk holding ``folder`` has less than ``needed`` bytes free."""
    if needed <= 0:
        return None
    probe = folder
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    free = shutil.disk_usage(probe).free
    if free >= needed:
        return None
    return (f"Only {free / GIB:.1f} GB are free on the disk holding {folder}; the install needs about "
            f"{needed / GIB:.0f} GB. Free some space and try again.")


def installed_versions(folder: str) -> dict[str, str]:
    """Normalised distribution name -> version, for the packages installed in ``folder``."""
    import importlib.metadata  # tens of ms: only when an install ends, not when the add-on loads

    return {normalize_name(dist.metadata["Name"]): dist.version
            for dist in importlib.metadata.distributions(path=[folder]) if dist.metadata["Name"]}


def recover_interrupted_swap(target: str) -> bool:
    """Put ``target.old`` back if a swap was interrupted between its two renames (Blender killed then)."""
    old = target + OLD_SUFFIX
    if not os.path.exists(target) and os.path.isdir(old):
        os.replace(old, target)
        return True
    return False


def swap_into_place(staging: str, target: str) -> None:
    """Make ``staging`` the new ``target``; on failure ``target`` is what it was before."""
    old = target + OLD_SUFFIX
    if os.path.exists(old):
        shutil.rmtree(old)
    had_target = os.path.exists(target)
    if had_target:
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if had_target:
            os.replace(old, target)
        raise
    # Windows refuses to delete DLLs that this Blender still has loaded; the
    # next install removes the leftover then.
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class InstallResult:
    ok: bool
    cancelled: bool = False
    message: str = ""
    tail: list[str] = field(default_factory=list)


class InstallJob(ProcessJob):
    """One install. ``run()`` blocks (background mode, tests); ``start()`` runs it on a thread.

    The UI reads ``progress``, ``lines`` and ``result`` while it runs; they are
    only ever replaced or appended to, so reading them from the main thread is safe.
    """

    MAX_LINES = 400
    THREAD_NAME = "latent_textures_install"

    def __init__(self, plan: InstallPlan | Callable[[], InstallPlan], env: Mapping[str, str] | None = None,
                 on_line: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.env = dict(env) if env is not None else dict(os.environ)
        self.on_line = on_line
        self.progress = PipProgress()
        self.lines: deque[str] = deque(maxlen=self.MAX_LINES)
        self.result: InstallResult | None = None
        self.pip_version: tuple[int, ...] | None = None

    # -- the work -------------------------------------------------------------------
    def run(self) -> InstallResult:
        try:
            self.result = self._run()
        except Exception as error:  # a bug or an OS error: say it, keep the old install
            traceback.print_exc()  # the whole story for the console; one line for the preferences
            self._clear_staging()
            self.result = InstallResult(False, message=f"Install failed ({type(error).__name__}): {error}",
                                        tail=list(self.lines)[-12:])
        return self.result

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self.progress.update(line)
        if self.on_line is not None:
            self.on_line(line)

    def _cancelled(self) -> InstallResult:
        self._clear_staging()
        return InstallResult(False, cancelled=True, message="Install cancelled; the previous packages are unchanged.",
                             tail=list(self.lines)[-12:])

    def _failed(self, message: str) -> InstallResult:
        self._clear_staging()
        return InstallResult(False, message=message, tail=list(self.lines)[-12:])

    def _run(self) -> InstallResult:
        if callable(self.plan):
            # A plan that still has to detect the GPU (nvidia-smi: up to seconds): made here, off Blender's main thread.
            self.progress.phase = "Checking this machine's GPU…"
            try:
                self.plan = self.plan()
            except InstallError as error:
                return self._failed(str(error))
        plan = self.plan
        recover_interrupted_swap(plan.target)
        problem = free_space_problem(os.path.dirname(plan.target), plan.min_free_bytes)
        if problem:
            return self._failed(problem)
        self.progress.phase = "Checking pip…"
        self.pip_version = self._ensure_pip()
        if self.pip_version is None:
            return self._failed(
                "Blender's Python has no pip, and ensurepip could not install it (see the lines below)."
            )
        if self._cancel.is_set():
            return self._cancelled()
        self._clear_staging()
        os.makedirs(plan.temp_dir, exist_ok=True)
        command = pip_install_command(PipInstall(plan.python, plan.staging, plan.requirements, plan.source,
                                                 self.pip_version))
        self._emit("$ " + " ".join(_quote(part) for part in command))
        self._process = StreamingProcess(command, env=pip_environment(self.env, plan.temp_dir))
        if self._cancel.is_set():
            return self._cancelled()
        code = self._process.run(self._emit)
        shutil.rmtree(plan.temp_dir, ignore_errors=True)
        if self._cancel.is_set():
            return self._cancelled()
        if code != 0:
            return self._failed(f"pip failed: {error_summary(list(self.lines))}. The previous packages are unchanged.")
        missing = self._missing_after_install()
        if missing:
            return self._failed(f"pip finished but {', '.join(missing)} is not in the new folder; "
                                "the previous packages are unchanged.")
        if plan.torch_build is not None and plan.verify_path:
            problem = self._torch_import_problem()
            if problem:
                return self._failed(f"The new PyTorch does not load: {problem}. The previous packages are unchanged.")
        if self._cancel.is_set():
            return self._cancelled()
        self.progress.phase = "Moving the new packages into place…"
        try:
            swap_into_place(plan.staging, plan.target)
        except OSError as error:
            return self._failed(
                f"Could not replace {plan.target} ({error}). It is probably in use by this Blender session "
                "(a model was loaded): restart Blender and install again. The previous packages are unchanged."
            )
        self.progress.phase = "Installed"
        self.progress.fraction = 1.0
        return InstallResult(True, message=f"Installed {len(plan.requirements)} packages into {plan.target}.",
                             tail=list(self.lines)[-12:])

    def _ensure_pip(self) -> tuple[int, ...] | None:
        version = self._pip_version()
        if version is not None:
            return version
        self._emit("pip is missing from Blender's Python: bootstrapping it with ensurepip")
        self.progress.phase = "Installing pip (ensurepip)…"
        for command in ensurepip_commands(self.plan.python):
            if self._cancel.is_set():
                return None
            self._emit("$ " + " ".join(_quote(part) for part in command))
            self._process = StreamingProcess(command, env=child_environment(self.env))
            if self._process.run(self._emit) == 0:
                version = self._pip_version()
                if version is not None:
                    return version
        return None

    def _pip_version(self) -> tuple[int, ...] | None:
        try:
            completed = subprocess.run(
                pip_check_command(self.plan.python), capture_output=True, text=True, errors="replace",
                timeout=120, stdin=subprocess.DEVNULL, env=child_environment(self.env),
                creationflags=hidden_window_flags(),
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self._emit(f"could not run pip: {error}")
            return None
        if completed.returncode != 0:
            return None
        return parse_pip_version(completed.stdout)

    def _missing_after_install(self) -> list[str]:
        present = installed_versions(self.plan.staging) if os.path.isdir(self.plan.staging) else {}
        return [name for name in (requirement_name(req) for req in self.plan.requirements)
                if normalize_name(name) not in present]

    def _torch_import_problem(self) -> str | None:
        from .probe import ProbeError, run_probe, search_path_for

        self.progress.phase = "Checking that the new PyTorch loads…"
        self.progress.fraction = None
        try:
            status = run_probe(self.plan.python, search_path_for(self.plan.staging, self.plan.verify_path),
                               packages=[TORCH], env=self.env)
        except ProbeError as error:
            return str(error)
        if not status.torch_imported:
            return status.torch_error or "unknown error"
        self._emit(f"PyTorch {status.torch_version} loads ({status.build})")
        return None

    def _clear_staging(self) -> None:
        shutil.rmtree(self.plan.temp_dir, ignore_errors=True)
        if os.path.exists(self.plan.staging):
            shutil.rmtree(self.plan.staging)


def _quote(part: str) -> str:
    return f'"{part}"' if (" " in part or not part) else part
