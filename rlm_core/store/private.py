"""Traces are private to their owner: folders 0700, files 0600 (journals, blobs, the database),
whatever the umask. A run's document and trace are no business of other users of the machine,
nor of another run's REPL worker (which, as root, runs as a uid of its own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_dirs(*paths: Path) -> None:
    """Create each folder (parents too) and take away what others may do in it. A folder this
    user does not own (a shared one named by RLM_TRACES_DIR) is left as it is."""
    for path in paths:
        path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            path.chmod(FOLDER_MODE)


def private_file(path: Path) -> None:
    """Take away what others may do with a file another library created (DuckDB's)."""
    if path.exists() and path.stat().st_uid == os.geteuid():
        path.chmod(FILE_MODE)


def open_private(path: Path, mode: str, **kwargs: Any) -> IO[Any]:
    """open(), creating the file 0600: "a" to append (journals), "wb" to write anew (blobs)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return open(os.open(path, flags | os.O_CLOEXEC, FILE_MODE), mode, **kwargs)
