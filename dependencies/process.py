"""Child processes whose output is read line by line and that can be stopped with everything they started.

pip and the download helper run as children of Blender, never inside it: a
child can be killed at any moment (threads cannot), and whatever it imports
stays out of Blender's process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

# Hugging Face tokens ("hf_" + 30-odd letters/digits) and URL credentials
# ("https://user:secret@host") never reach the preferences, a report or the console.
_SECRETS = (
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), "hf_***"),
    (re.compile(r"(?i)(\b(?:token|authorization|password)\b\s*[=:]\s*)(?:bearer\s+)?\S+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]+):[^@\s/]+@"), r"\1:***@"),
)


def redact_secrets(text: str) -> str:
    """``text`` with tokens and URL passwords replaced by ``***``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def hidden_window_flags() -> int:
    """On Windows, children of a GUI Blender would each flash a console window without this."""
    return getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0


class StreamingProcess:
    """Run ``command``; ``on_line`` gets each output line (stdout and stderr merged, secrets redacted).

    ``run`` blocks until the process ends and returns its exit code. ``stop``
    (from any thread) ends the process and its children: pip starts build
    helpers, and a cancelled install must not leave them writing.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def alive(self) -> bool:
        """True until the process has ended (also before it started)."""
        process = self._process
        return process is None or process.poll() is None

    def run(self, on_line: Callable[[str], None]) -> int:
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | hidden_window_flags()
        else:
            kwargs["start_new_session"] = True  # its own process group: stop() kills the whole tree
        with self._lock:
            if self._stopped:
                return -signal.SIGTERM
            self._process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, **kwargs,
            )
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            # pip's raw progress and our helpers end lines with \n; \r-only updates are split too.
            for part in raw.decode("utf-8", errors="replace").replace("\r", "\n").split("\n"):
                if part.strip():
                    on_line(redact_secrets(part.rstrip()))
        return self._process.wait()

    def stop(self, grace: float = 3.0) -> None:
        """Terminate the process tree; kill it if it has not ended after ``grace`` seconds.

        Returns at once (it is called from Blender's main thread): the wait and
        the kill happen on a thread of their own.
        """
        with self._lock:
            self._stopped = True
            process = self._process
        if process is None or process.poll() is not None:
            return
        if sys.platform != "win32":
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
        threading.Thread(target=_end_tree, args=(process, grace), name="latent_textures_stop", daemon=True).start()


def _end_tree(process: subprocess.Popen, grace: float) -> None:
    """After SIGTERM: SIGKILL what is still running ``grace`` seconds later (on Windows: taskkill the tree)."""
    if sys.platform == "win32":
        # taskkill /T is the documented way to end a process *tree* on Windows.
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(process.pid)],
            capture_output=True, creationflags=hidden_window_flags(), check=False,
        )
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ProcessJob:
    """Thread control shared by the install and download jobs: each runs one child process at a time.

    Subclasses set ``result`` when done, keep the running child in ``_process``
    and implement ``run()`` (blocking); ``start()`` runs it on a daemon thread,
    ``cancel()`` may come from any thread.
    """

    THREAD_NAME = "latent_textures_job"

    def __init__(self) -> None:
        self.result = None
        self._cancel = threading.Event()
        self._process: StreamingProcess | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.result is None and (self._thread is None or self._thread.is_alive())

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def cancel(self) -> None:
        self._cancel.set()
        process = self._process
        if process is not None:
            process.stop()

    def run(self):  # pragma: no cover - abstract
        raise NotImplementedError


def child_environment(base: Mapping[str, str], drop: Sequence[str] = ()) -> dict[str, str]:
    """``base`` for a child Python: UTF-8 output (we decode it as such) and without ``PYTHONPATH``/``PYTHONHOME``.

    Blender's own Python ignores those variables; a child would not, and a
    PYTHONPATH meant for another Python would leak foreign packages into it.
    """
    env = {key: value for key, value in base.items() if key not in ("PYTHONPATH", "PYTHONHOME", *drop)}
    env["PYTHONUTF8"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env
