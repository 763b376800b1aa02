"""Atomic file writes: a kill at any moment leaves the old file or the new one, never a part.

Each write goes to a temporary file in the target's directory (name prefixed
with ``TEMP_PREFIX``, so leftovers of a killed process can be found), is
flushed to disk, renamed over the target, and the directory entry is flushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

TEMP_PREFIX = ".tmp-"


def _default_file_mode() -> int:
    """Returns 0o666 less the process umask: what a plain ``open()`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: str) -> None:
    """Flushes a rename to disk, so it survives a power cut too (POSIX; a no-op elsewhere)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str, suffix: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp_path)``, flushes the file to disk and renames it to ``path``.

    Args:
        path: the file to write; its directory must exist.
        suffix: suffix of the temporary file (some writers check it, e.g. ".keras").
        write: writes the content to the path it is given.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _default_file_mode())  # mkstemp makes it owner-only
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    fsync_directory(directory)


def write_text_atomic(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically ("\\n" line ends kept as they are)."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    write_atomic(path, ".txt", write)


def write_json_atomic(path: str, data: Any) -> None:
    """Writes ``data`` as indented UTF-8 JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
