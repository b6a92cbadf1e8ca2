"""Content-addressed blobs: big texts (contexts, long prompts) stored once, by their sha256.

Written without the database, so a CLI run beside the app still stores its blobs.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from rlm_core.errors import DiskFull
from rlm_core.store.private import open_private, private_dirs

_SHA256 = re.compile(r"[0-9a-f]{64}")


def blob_path(blob_dir: Path, sha: str) -> Path:
    """Where a blob lives; ValueError for anything but a sha256 (names come from imported
    files too, and `../..` must not reach a file outside the folder)."""
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ValueError(f"not a blob name: {str(sha)[:80]!r}")
    return blob_dir / sha[:2] / sha


def write_blob(blob_dir: Path, data: bytes) -> str:
    """Store bytes once under their sha256 (works without the database: a CLI run beside the app
    still writes its blobs)."""
    sha = hashlib.sha256(data).hexdigest()
    path = blob_path(blob_dir, sha)
    if not path.exists():
        tmp = path.with_name(f"{sha}.tmp{os.getpid()}.{threading.get_ident()}")
        try:
            private_dirs(blob_dir.parent, blob_dir, path.parent)
            with open_private(tmp, "wb") as f:
                f.write(data)
            tmp.replace(path)  # atomic: a reader never sees half a blob
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DiskFull.ERRNOS:
                raise DiskFull.at(blob_dir.parent) from exc
            raise
    return sha
