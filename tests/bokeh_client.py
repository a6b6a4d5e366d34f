"""A browser-less Bokeh client: what a page does before it draws, over plain HTTP and the
websocket (for load tests and ``bench/``).

``GET /PAGE`` with the session cookie (the server builds the session's document and puts a
session token in the page), then the websocket with that token as Bokeh's subprotocol, the
``ACK``, and ``PULL-DOC-REQ`` until the whole ``PULL-DOC-REPLY`` has arrived.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

__all__ = ["Screen", "open_document", "open_many"]

_TOKEN = re.compile(r'"token":\s*"([^"]+)"')


class Screen:
    """One open page: its websocket stays open until :meth:`close` (a wall screen).

    ``doc`` is the document as the server sent it (Bokeh's JSON); :meth:`find` looks a
    model up in it, :meth:`change` sets a property as a click in the browser would, and
    :meth:`drain` reads (and counts) what the server pushes from then on.
    """

    def __init__(self, conn: Any, seconds: float, received: int, doc: Any = None) -> None:
        self.conn, self.seconds, self.received, self.doc = conn, seconds, received, doc
        self.patches = 0
        self.frames: list[str] = []  # the text frames pushed since drain() started
        self.keep_frames = False
        self._msgid = 100

    def find(self, name: str | None, css_class: str) -> str | None:
        """The id of the first model of type ``name`` (any type for None) with
        ``css_class`` (None if absent)."""
        stack = [self.doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                attrs = item.get("attributes") or {}
                classes = attrs.get("css_classes") or []
                if isinstance(classes, dict):  # Bokeh may send a list as {"type": "list", …}
                    classes = classes.get("entries") or classes.get("items") or []
                if (name is None or item.get("name") == name) and css_class in classes \
                        and "id" in item:
                    return str(item["id"])
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return None

    async def _patch(self, event: dict[str, Any]) -> None:
        self._msgid += 1
        for part in (json.dumps({"msgid": str(self._msgid), "msgtype": "PATCH-DOC"}), "{}",
                     json.dumps({"events": [event]})):
            await self.conn.write_message(part)

    async def ready(self) -> None:
        """Tell the server the page has drawn (Bokeh's ``document_ready``), which runs the
        page's on-load callbacks (the cockpit's refresh and play timers)."""
        await self._patch({"kind": "MessageSent", "msg_type": "bokeh_event",
                           "msg_data": {"type": "event", "name": "document_ready",
                                        "values": {"type": "map", "entries": []}}})

    async def event(self, name: str, model_id: str, **values: Any) -> None:
        """Send a UI event of model ``model_id``, e.g. ``button_click``, or ``data_event``
        with ``data=`` (what a custom component's ``model.send_msg`` sends)."""
        entries = [["model", {"id": model_id}], *([k, v] for k, v in values.items())]
        await self._patch({"kind": "MessageSent", "msg_type": "bokeh_event",
                           "msg_data": {"type": "event", "name": name,
                                        "values": {"type": "map", "entries": entries}}})

    async def change(self, model_id: str, attr: str, value: Any) -> None:
        """Send the change of ``attr`` of model ``model_id`` to ``value`` (a PATCH-DOC)."""
        await self._patch({"kind": "ModelChanged", "model": {"id": model_id}, "attr": attr,
                           "new": value})

    async def drain(self) -> None:
        """Read what the server pushes until the socket closes, counting its patches."""
        while True:
            frame = await self.conn.read_message()
            if frame is None:
                return
            self.received += len(frame)
            if isinstance(frame, str) and '"msgtype":"PATCH-DOC"' in frame.replace(" ", ""):
                self.patches += 1
            if self.keep_frames and isinstance(frame, str) and len(frame) > 2:
                self.frames.append(frame)

    async def wait_for(self, text: str, timeout: float = 60.0) -> bool:
        """Wait until the document as sent, or a frame pushed since (kept with
        ``keep_frames``), contains ``text``; returns whether one did in time."""
        needle = json.dumps(text)[1:-1]
        if text in json.dumps(self.doc, ensure_ascii=False):
            return True
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for frame in self.frames[seen:]:
                if needle in frame or text in frame:
                    return True
            seen = len(self.frames)
            await asyncio.sleep(0.2)
        return False

    @property
    def open(self) -> bool:
        return self.conn.protocol is not None and self.conn.close_code is None

    def close(self) -> None:
        self.conn.close()


async def _read(conn: Any, what: str) -> Any:
    frame = await conn.read_message()
    if frame is None:
        raise RuntimeError(f"websocket closed before {what}")
    return frame


async def open_document(base: str, cookie: str, path: str = "/cockpit", *,
                        keep_open: bool = False, timeout: float = 300.0
                        ) -> tuple[float, int] | Screen:
    """Open ``path`` as its page would; (seconds from the GET to the document's last byte,
    bytes received), or the open :class:`Screen` with ``keep_open``."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    started = time.perf_counter()
    page = await AsyncHTTPClient().fetch(HTTPRequest(f"{base}{path}",
                                                     headers={"Cookie": cookie},
                                                     request_timeout=timeout))
    html = page.body.decode()
    token = _TOKEN.search(html)
    if token is None:
        raise RuntimeError(f"no session token in {path}: {html[:300]}")
    ws_url = base.replace("http://", "ws://") + path.split("?")[0] + "/ws"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": cookie},
                                               request_timeout=timeout),
                                   subprotocols=["bokeh", token.group(1)],
                                   max_message_size=256 * 2**20)
    received = 0
    try:
        while True:  # ACK first (three frames: header, metadata, content)
            frame = await _read(conn, "ACK")
            received += len(frame)
            if '"msgtype":"ACK"' in str(frame).replace(" ", ""):
                await _read(conn, "ACK")
                await _read(conn, "ACK")
                break
        header = json.dumps({"msgid": "1", "msgtype": "PULL-DOC-REQ"})
        for part in (header, "{}", "{}"):
            await conn.write_message(part)
        while True:  # the reply: header, metadata, content (+ binary buffers)
            frame = await _read(conn, "the document")
            received += len(frame)
            if isinstance(frame, str) and '"msgtype":"PULL-DOC-REPLY"' in frame.replace(" ", ""):
                head = json.loads(frame)
                parts = [await _read(conn, "the document")
                         for _ in range(2 + 2 * int(head.get("num_buffers", 0)))]
                received += sum(len(p or "") for p in parts)
                content = parts[1]
                break
    except BaseException:
        conn.close()
        raise
    seconds = time.perf_counter() - started
    if keep_open:
        return Screen(conn, seconds, received,
                      json.loads(content) if isinstance(content, str) else None)
    conn.close()
    return seconds, received


async def open_many(base: str, cookie: str, n: int, path: str = "/cockpit"
                    ) -> list[tuple[float, int]]:
    """``n`` clients opening ``path`` at once: (seconds, bytes) each."""
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=max(10, n))
    return list(await asyncio.gather(*(open_document(base, cookie, path) for _ in range(n))))
