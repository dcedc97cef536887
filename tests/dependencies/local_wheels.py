"""Offline package sources for install tests: hand-written wheels and a loopback server that stalls.

Shared by tests/dependencies and tests/blender (loaded by path there).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_wheel(folder: Path, name: str, version: str, body: str | None = None) -> Path:
    """A minimal pure-Python wheel, written by hand: pip installs it offline in under a second."""
    files = {
        f"{name}/__init__.py": body if body is not None else f"VERSION = {version!r}\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: latent-textures-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def write_corrupt_wheel(folder: Path, name: str, version: str) -> Path:
    """A file named like a wheel that is not a zip: pip finds it, then fails while installing."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    wheel.write_bytes(b"this is not a zip archive\n" * 10)
    return wheel


@contextmanager
def stalling_find_links(wheel_name: str, size: int = 50_000_000, seconds: float = 60.0) -> Iterator[str]:
    """A find-links page on 127.0.0.1 whose one wheel downloads a few bytes, then hangs.

    pip sees the link, starts "Downloading …" and blocks: a cancel must end it.
    The server only answers on loopback and stops with the context (or after ``seconds``).
    """
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("", "/links"):
                body = f'<html><body><a href="/{wheel_name}">{wheel_name}</a></body></html>'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                self.wfile.write(b"\0" * 1024)
                self.wfile.flush()
                stop.wait(seconds)
            except OSError:
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/links"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
