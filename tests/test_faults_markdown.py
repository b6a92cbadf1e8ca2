"""Untrusted text is always text: file names, ZIP member names, provider errors and model replies
reach the page with every markdown mark escaped (a remote image must never load), and the
server refuses browsers of other origins and hosts."""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest
from browser import streamlit_server
from conftest import ROOT, FakeOpenAIServer, FakeReply, by_model, poll
from streamlit.testing.v1 import AppTest

from ui.safe import md

IMAGE = "![p](http://127.0.0.1:9/pixel.png)"


def rendered(at: AppTest) -> list[str]:
    """The markdown source of every message and caption on the page."""
    kinds = (at.error, at.warning, at.info, at.success, at.caption, at.markdown)
    return [element.value for found in kinds for element in found]


def assert_no_markdown(at: AppTest) -> None:
    bodies, plain = rendered(at), [element.value for element in at.text]
    assert any("pixel.png" in body for body in bodies + plain), bodies  # the text is shown ...
    assert not any(IMAGE in body or "](http" in body for body in bodies), bodies  # ... as text


def test_esc_leaves_no_image_link_html_or_directive() -> None:
    hostile = f"{IMAGE} [a](http://x) <img src=x> :red[x] :material/home: $x$ `c` **b** # h"
    # every mark that could start markdown comes escaped, and nothing else changes
    assert re.fullmatch(r"(?:[^\\`*_\[\]()<>!#|~$:]|\\.)*", md(hostile))
    assert re.sub(r"\\(.)", r"\1", md(hostile)) == hostile


@pytest.mark.usefixtures("fresh_app")
def test_zip_member_and_file_names_in_upload_notes_are_plain_text() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "the real text")
        archive.writestr(f"{IMAGE}.bin", bytes(range(256)) * 8)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.radio(key="ctx_source").set_value("Upload files").run()
    at.session_state  # noqa: B018 - touch state so the uploader keeps its widget id
    upload = [(f"{IMAGE}.zip", buffer.getvalue(), "application/zip")]
    at.get("file_uploader")[0].set_value(upload).run()  # type: ignore[union-attr]
    assert not at.exception
    assert_no_markdown(at)


@pytest.mark.usefixtures("fresh_app")
def test_a_providers_error_text_on_the_run_page_is_plain_text() -> None:
    def refuse(body: dict[str, Any]) -> FakeReply:
        return FakeReply(f"bad request {IMAGE}", status=400)

    with FakeOpenAIServer(by_model({"root": refuse})) as server:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.radio(key="ctx_source").set_value("Paste text").run()
        at.text_area(key="ctx_paste").set_value("some text").run()
        at.text_input[0].set_value("What?").run()
        for key in ("root_model", "sub_model"):
            at.selectbox(key=key).set_value(at.selectbox(key=key).options[-1]).run()
            at.text_input(key=f"{key}_custom").set_value("openai/root").run()
        at.text_input(key="api_base").set_value(server.base_url).run()
        at.button(key="run_button").click().run()
        poll(at, lambda at: any("run failed" in e.value for e in at.error), "no error shown")
    assert_no_markdown(at)


@pytest.mark.usefixtures("fresh_app")
def test_a_model_reply_in_test_connection_is_plain_text() -> None:
    with FakeOpenAIServer(f"OK {IMAGE}") as server:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
        at.switch_page("pages/5_Settings.py").run()
        at.text_input(key="set_server_base").set_value(server.base_url).run()
        at.text_input(key="set_server_model").set_value("good").run()
        at.button(key="test_server").click().run()
    assert_no_markdown(at)


def handshake(port: int, host: str, origin: str | None) -> bytes:
    """The status line a WebSocket opening of the app's stream gets, with exactly these Host
    and Origin headers (a client library would set the Host itself)."""
    headers = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *([f"Origin: {origin}"] if origin else []),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        return conn.recv(200).split(b"\r\n")[0]


def test_the_server_refuses_other_origins_and_hosts(tmp_path: Path) -> None:
    with streamlit_server(ROOT / "app.py", cwd=ROOT, log_path=tmp_path / "app.log") as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        own = f"127.0.0.1:{port}"
        assert handshake(port, own, f"http://{own}").endswith(b"101 Switching Protocols")
        # a page of another site, and one that rebound its own name to 127.0.0.1
        assert handshake(port, own, "http://evil.example").endswith(b"403 Forbidden")
        rebound = f"evil.example:{port}"
        assert handshake(port, rebound, f"http://{rebound}").endswith(b"403 Forbidden")
