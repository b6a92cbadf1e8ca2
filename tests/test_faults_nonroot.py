"""The sandbox without root (the common desktop case), exercised from this root test run: a
launcher holding a key starts, as `nobody`, a process that runs hostile cells in each mode
(bubblewrap and namespaces through user namespaces, then seccomp alone).

When the interpreter or this checkout lies under a folder `nobody` cannot enter (/root), the
nobody process gets a mount namespace of its own in which that folder is covered and they are
bound back; the sandbox itself knows nothing of this."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from rlm_core.repl.isolation import closed_ancestors

NOBODY = 65534
SECRET = "sk-launcher-NONROOT-0099"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")),
    reason="needs root (to become nobody) and util-linux unshare and setpriv",
)

ATTACK = r"""
import json, os, socket
seen = {}
try:
    seen['launcher_environ'] = open('/proc/LAUNCHER/environ', 'rb').read().decode('latin-1')
except OSError as exc:
    seen['launcher_environ'] = type(exc).__name__
try:
    os.kill(LAUNCHER, 0)
    seen['signal'] = 'sent'
except OSError as exc:
    seen['signal'] = type(exc).__name__
try:
    open('TRACES/journal/planted.jsonl', 'w').write('{}')
    seen['plant'] = 'planted'
except OSError as exc:
    seen['plant'] = type(exc).__name__
try:
    socket.create_connection(('127.0.0.1', PORT), timeout=2)
    seen['connect'] = 'connected'
except OSError as exc:
    seen['connect'] = type(exc).__name__
seen['env'] = dict(os.environ)
print(json.dumps(seen))
"""

HOPPER = r"""
import os, time
beat = os.open('beat', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
if os.fork() == 0:
    os.setsid()
    while True:
        if os.fork():
            os._exit(0)
        os.write(beat, b'.')
        time.sleep(0.0005)
"""

SCRIPT = r"""
import json, os, socket, sys, time
sys.path.insert(0, ROOT)
from rlm_core.repl import ContextRef, Sandbox
base, launcher = sys.argv[1], os.getppid()
traces = os.path.join(base, 'traces')
os.makedirs(os.path.join(traces, 'journal'), mode=0o700)
context = os.path.join(traces, 'context.txt')
with open(context, 'w') as f:
    f.write('a document')
listener = socket.create_server(('127.0.0.1', 0))
listener.settimeout(0.2)
attack = ATTACK.replace('LAUNCHER', str(launcher)).replace('TRACES', traces)
attack = attack.replace('PORT', str(listener.getsockname()[1]))
out = {}
for mode in ('bubblewrap', 'namespaces', 'seccomp'):
    os.environ['RLM_SANDBOX_ISOLATION'] = mode
    try:
        ref = ContextRef(context, 'text', hide=(traces,))
        box = Sandbox(ref, lambda fn, args: 'ok', memory_mb=512)
    except RuntimeError as exc:
        out[mode] = {'unavailable': str(exc)}
        continue
    with box:
        result = box.execute(attack, timeout_s=20)
        got = {'isolation': box.isolation, 'error': result.error}
        got['seen'] = json.loads(result.stdout) if result.error is None else None
        # SIGINT finds the worker, wherever its namespaces put it: interrupted, not restarted
        got['interrupted'] = not box.execute('while True: pass', timeout_s=0.5).restarted
        if mode != 'seccomp':  # there a hopper of the same user escapes: the README says so
            got['hopper'] = box.execute(HOPPER, timeout_s=20).error
            beat = os.open(os.path.join(box.work_dir, 'beat'), os.O_RDONLY)
            time.sleep(0.2)
    if mode != 'seccomp':
        size = os.fstat(beat).st_size
        time.sleep(0.5)
        got['hopper_beats'] = [size, os.fstat(beat).st_size]
    try:
        listener.accept()
        got['accepted'] = True
    except OSError:
        got['accepted'] = False
    got['planted'] = os.path.exists(os.path.join(traces, 'journal', 'planted.jsonl'))
    out[mode] = got
print(json.dumps(out))
"""


def _wrapped(argv: list[str], keep: list[str]) -> list[str]:
    """`argv` as nobody, in a mount namespace where the folders `keep` lie under (/root) are
    covered by an empty tmpfs and `keep` bound back, when nobody could not reach them."""
    covers = sorted({a for path in keep for a in closed_ancestors(path + "/x")})
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    if not covers:
        return drop
    lines = ["set -eu", "stash=$(mktemp -d)"]
    for i, path in enumerate(keep):
        lines += [f"mkdir $stash/{i}", f"mount --bind '{path}' $stash/{i}"]
    for cover in covers:
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs '{cover}'")
    for i, path in enumerate(keep):
        lines += [f"mkdir -p '{path}'", f"mount --move $stash/{i} '{path}'"]
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *drop]


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rlm-nonroot-"))
    os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_without_root_the_worker_reaches_neither_launcher_nor_traces(base: Path) -> None:
    script = base / "attack.py"
    body = SCRIPT.replace("ATTACK", repr(ATTACK)).replace("HOPPER", repr(HOPPER))
    script.write_text(body.replace("ROOT", repr(str(ROOT))))
    python = [sys.executable, "-I", str(script), str(base)]
    # a launcher that holds a key and stays the app's parent (a wrapper script, make, uv run)
    launcher = ["sh", "-c", '"$@"; exit $?', "sh", *python]
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "OPENAI_API_KEY": SECRET}
    keep = sorted({os.path.realpath(sys.prefix), str(ROOT)})
    done = subprocess.run(
        _wrapped(launcher, keep), env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    for mode in ("bubblewrap", "namespaces", "seccomp"):
        got = out[mode]
        assert "unavailable" not in got, got
        seen = got["seen"]
        assert seen is not None, got
        # every mode: no key in the worker's environment, no socket, a cell can be interrupted
        assert SECRET not in json.dumps(seen["env"]) and seen["connect"] == "PermissionError"
        assert not got["accepted"] and got["interrupted"], got
        if mode == "seccomp":
            assert got["isolation"] == "process+seccomp"
            continue  # same user, same processes, same files: README says what it cannot do
        assert got["isolation"] == f"{mode}+seccomp"
        assert got["hopper"] is None, got
        beats = got["hopper_beats"]
        assert beats[0] == beats[1], f"{mode}: the hopper outlived the sandbox"
        # the launcher is not in the worker's PID namespace; the traces folder is not in its view
        assert seen["launcher_environ"] == "FileNotFoundError", seen
        assert seen["signal"] == "ProcessLookupError"
        assert seen["plant"] in ("FileNotFoundError", "PermissionError", "OSError")
        assert not got["planted"]
