"""Re-record the runs the Learn page walks through (examples/learn/*.jsonl) with the demo models.

Usage: python scripts/record_learn.py. Offline and deterministic apart from ids and times.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlm_core import RLM, TraceStore
from rlm_core.analysis.narrate import EXAMPLE_CHARS, EXAMPLES, LEARN_DIR, QUESTION
from rlm_core.evaluate.examples import needle_document
from rlm_core.exchange.jsonl import export_jsonl


def record(out_dir: Path = LEARN_DIR) -> list[Path]:
    """Run the demo models on the needle document and export both runs as JSONL."""
    context = needle_document(EXAMPLE_CHARS)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        flat = RLM("demo/root", "demo/sub", traces_dir=tmp).run(context, QUESTION)
        deep = RLM(
            "demo/recursive", "demo/sub", child_root_model="demo/root", max_depth=2, traces_dir=tmp
        ).run(context, QUESTION)
        store = TraceStore(tmp)
        try:
            written = []
            for name, result in zip(EXAMPLES, (flat, deep), strict=True):
                path = out_dir / name
                path.write_text(export_jsonl(store, result.run_id), encoding="utf-8")
                written.append(path)
            return written
        finally:
            store.close()


if __name__ == "__main__":
    for path in record():
        print(path)
