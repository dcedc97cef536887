"""The exact pip command lines, pip's environment, and reading pip's output (all pure).

Everything runs as ``<Blender's python> -m pip ...`` (``sys.executable`` inside
Blender is its bundled Python), always with ``--target``: nothing is written
into Blender's own installation, which may be read-only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .process import child_environment

# pip >= 24.1 prints "Progress <done> of <total>" lines with --progress-bar raw;
# older pips (Blender 4.2 ships 23.x) know only on/off.
RAW_PROGRESS_SINCE = (24, 1)
ROOT_USER_ACTION_SINCE = (22, 1)

# Variables that would redirect or forbid a --target install. PIP_REQUIRE_VIRTUALENV
# makes pip refuse to run at all outside a venv, which Blender's Python never is.
PIP_VARIABLES_DROPPED = ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV", "PIP_NO_INDEX")


@dataclass(frozen=True)
class PackageSource:
    """Where pip looks. Default: PyPI (plus PyTorch's index for torch builds that live there).

    ``no_index`` with local ``find_links`` installs without any network, as the
    tests do; ``index_url`` points at a mirror.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def arguments(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        else:
            if self.index_url:
                args += ["--index-url", self.index_url]
            for url in self.extra_index_urls:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    @property
    def needs_network(self) -> bool:
        """False only when every place pip may look is a local folder."""
        if not self.no_index:
            return True
        return any(re.match(r"(?i)[a-z][a-z0-9+.-]*://", link) and not link.lower().startswith("file:")
                   for link in self.find_links)


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install --target`` run."""

    python: str
    target: str
    requirements: tuple[str, ...]
    source: PackageSource = field(default_factory=PackageSource)
    pip_version: tuple[int, ...] = (0,)


def pip_check_command(python: str) -> list[str]:
    """Answers with pip's version (exit 0), or fails when Blender's Python has no pip."""
    return [python, "-m", "pip", "--version"]


def ensurepip_commands(python: str) -> list[list[str]]:
    """Ways to bootstrap pip, tried in order until one works.

    ``ensurepip`` ships with Python and installs the pip wheel it carries (no
    network). Into Blender's own folder first; where that folder is read-only
    (a system-wide install), into the user's site-packages.
    """
    return [
        [python, "-m", "ensurepip", "--upgrade", "--default-pip"],
        [python, "-m", "ensurepip", "--upgrade", "--default-pip", "--user"],
    ]


def pip_install_command(install: PipInstall) -> list[str]:
    if not install.requirements:
        raise ValueError("pip install needs at least one requirement")
    raw = install.pip_version >= RAW_PROGRESS_SINCE
    command = [
        install.python, "-m", "pip", "install",
        "--target", install.target,
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        # Wheels only: an artist has no compiler, and a source build would fail
        # minutes later with a compiler error instead of "no matching distribution".
        "--only-binary", ":all:",
        "--progress-bar", "raw" if raw else "off",
    ]
    if install.pip_version >= ROOT_USER_ACTION_SINCE:
        command += ["--root-user-action", "ignore"]
    command += install.source.arguments()
    command += list(install.requirements)
    return command


def pip_environment(base: Mapping[str, str], temp_dir: str | None = None) -> dict[str, str]:
    """The environment pip runs in: ``base`` without variables that break ``--target``.

    ``temp_dir``: pip unpacks wheels into the temp folder before moving them
    into the target; /tmp is often a small RAM disk, too small for CUDA torch.
    """
    env = child_environment(base, drop=PIP_VARIABLES_DROPPED)
    if temp_dir is not None:
        for name in ("TMPDIR", "TEMP", "TMP"):
            env[name] = temp_dir
    return env


def parse_pip_version(text: str) -> tuple[int, ...] | None:
    """``pip 26.3 from /x (python 3.11)`` -> ``(26, 3)``."""
    match = re.search(r"\bpip (\d+(?:\.\d+)*)", text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


@dataclass
class PipProgress:
    """What the preferences show while pip runs."""

    phase: str = "Starting pip…"
    fraction: float | None = None  # of the current download, when pip says
    downloaded_files: int = 0

    def update(self, line: str) -> None:
        """Advance from one line of pip output."""
        text = line.strip()
        progress = re.fullmatch(r"Progress (\d+) of (\d+)", text)
        if progress:
            done, total = int(progress.group(1)), int(progress.group(2))
            self.fraction = done / total if total else None
            return
        if text.startswith("Collecting "):
            self.phase = "Resolving " + text.removeprefix("Collecting ").split(" ")[0]
            self.fraction = None
        elif text.startswith("Downloading "):
            self.downloaded_files += 1
            self.phase = "Downloading " + _short_download(text.removeprefix("Downloading "))
            self.fraction = 0.0
        elif text.startswith(("Processing ", "Using cached ")):
            self.phase = "Using " + _short_download(text.split(" ", 1)[1] if " " in text else text)
        elif text.startswith("Installing collected packages"):
            self.phase = "Installing (unpacking the packages; this can take a few minutes)…"
            self.fraction = None
        elif text.startswith("Successfully installed"):
            self.phase = "Installed"
            self.fraction = 1.0


def _short_download(text: str) -> str:
    """``https://…/torch-2.13.0-cp311-….whl (742.1 MB)`` -> ``torch-2.13.0-cp311-….whl (742.1 MB)``."""
    match = re.match(r"(\S+)(.*)", text)
    if not match:
        return text
    return match.group(1).rstrip("/").rsplit("/", 1)[-1] + match.group(2)


def error_summary(lines: Sequence[str]) -> str:
    """One line for a report: pip's last ``ERROR:`` line, else its last line."""
    for line in reversed(lines):
        if line.lstrip().startswith("ERROR:"):
            return line.strip().removeprefix("ERROR:").strip()
    return lines[-1].strip() if lines else "pip printed nothing"
