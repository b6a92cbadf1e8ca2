"""Content-addressed blobs: big texts (contexts, long prompts) stored once, by their sha256.

Written without the database, so a CLI run beside the app still stores its blobs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from rlm_core.store.private import open_private, private_dirs


def blob_path(blob_dir: Path, sha: str) -> Path:
    return blob_dir / sha[:2] / sha


def write_blob(blob_dir: Path, data: bytes) -> str:
    """Store bytes once under their sha256 (works without the database: a CLI run beside the app
    still writes its blobs)."""
    sha = hashlib.sha256(data).hexdigest()
    path = blob_path(blob_dir, sha)
    if not path.exists():
        private_dirs(blob_dir.parent, blob_dir, path.parent)
        tmp = path.with_name(f"{sha}.tmp{os.getpid()}.{threading.get_ident()}")
        with open_private(tmp, "wb") as f:
            f.write(data)
        tmp.replace(path)  # atomic: a reader never sees half a blob
    return sha
