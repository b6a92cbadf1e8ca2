"""The tests' fake OpenAI-compatible server in its own process, for the benchmark.

In the benchmark process it would share the GIL with the engine and slow both down, which a
remote provider never does. Usage: python bench/server.py CODE_FILE SUB_DELAY_S (prints the port).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_openai import FakeOpenAIServer, FakeReply, by_model


def main(code_file: str, sub_delay: str) -> None:
    code = Path(code_file).read_text()
    sub = FakeReply("pong", delay_s=float(sub_delay))

    def root(body: dict[str, Any]) -> str:
        if len(body["messages"]) > 2:
            return "```repl\nFINAL(out)\n```"
        return f"```repl\n{code}\n```"

    with FakeOpenAIServer(by_model({"root": root, "sub": lambda body: sub})) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:3])
