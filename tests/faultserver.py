"""A real HTTP server on 127.0.0.1 that serves files and misbehaves on request.

Each file has a queue of behaviours, one consumed per GET (plain "ok" once the queue is
empty), so a test can say "cut the first transfer at 1 MB, then behave":

    server.serve("yolov3-tiny.weights", data)
    server.plan("yolov3-tiny.weights", "cut:1000000", "ok")

Behaviours:
    ok             honour Range (206 + Content-Range), else 200 with the whole file
    norange        ignore Range: always 200 with the whole file
    cut:N          announce the full body, send N bytes of it, then drop the connection
    corrupt:N      the whole file with the byte at offset N flipped
    html           200 text/html with an error page
    html-as-binary the error page, but labelled application/octet-stream
    status:C       answer HTTP C (503s and 429s carry Retry-After: 0)
    stall:N        send N bytes, then go silent for `stall_seconds`
    slow:R         honour Range, but send at about R bytes per second
    trickle:S      honour Range, but send one byte every S seconds (a read timeout never fires)
    restart-cut:N  ignore Range: 200 with the whole file announced, N bytes sent, then drop
    gate:N         honour Range, send N bytes, then wait until `release()` before the rest
    extra:N        the whole file plus N more bytes, Content-Length to match
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Moved</title></head><body>Gone.</body></html>\n"


@dataclass(frozen=True)
class Seen:
    """One request the server answered."""

    path: str
    range: str | None
    behaviour: str


class FaultServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.plans: dict[str, deque[str]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.stall_seconds = 5.0
        self.gate = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def serve(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.files[path.lstrip("/")] = data
        self.content_types[path.lstrip("/")] = content_type

    def plan(self, path: str, *behaviours: str) -> None:
        self.plans[path.lstrip("/")].extend(behaviours)

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path.lstrip("/")]

    def next_behaviour(self, path: str) -> str:
        with self._lock:
            queue = self.plans[path]
            return queue.popleft() if queue else "ok"

    def release(self) -> None:
        """Let every transfer held by ``gate:N`` go on."""
        self.gate.set()

    def close(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def handle(self) -> None:
            # a client that hung up (killed, or gave up on us) is not a server error
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].lstrip("/")
            behaviour = server.next_behaviour(path)
            server.seen.append(Seen(path, self.headers.get("Range"), behaviour))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(path, behaviour)

        def _answer(self, path: str, behaviour: str) -> None:
            kind, _, arg = behaviour.partition(":")
            if kind == "status":
                self._status(int(arg))
                return
            if kind in ("html", "html-as-binary"):
                ctype = "text/html; charset=utf-8" if kind == "html" else "application/octet-stream"
                self._send(200, HTML_PAGE, ctype)
                return
            if path not in server.files:
                self._status(404)
                return
            data = server.files[path]
            ctype = server.content_types[path]
            if kind == "corrupt":
                flipped = bytearray(data)
                flipped[int(arg)] ^= 0xFF
                self._send(200, bytes(flipped), ctype)
                return
            if kind == "extra":
                self._send(200, data + b"\0" * int(arg), ctype)
                return
            start = self._range_start() if kind not in ("norange", "restart-cut") else None
            status, body, headers = 200, data, {}
            if start is not None and start < len(data):
                status, body = 206, data[start:]
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            elif start is not None:
                self._status(416)
                return
            if kind in ("cut", "restart-cut"):
                self._send(status, body, ctype, headers, send=int(arg), drop=True)
            elif kind == "gate":
                self._send(status, body, ctype, headers, send=int(arg), gate=server.gate)
            elif kind == "trickle":
                self._send(status, body, ctype, headers, rate=1 / float(arg), step=1)
            elif kind == "stall":
                self._send(status, body, ctype, headers, send=int(arg), stall=server.stall_seconds)
            elif kind == "slow":
                self._send(status, body, ctype, headers, rate=float(arg))
            else:
                self._send(status, body, ctype, headers)

        def _range_start(self) -> int | None:
            value = self.headers.get("Range")
            if not value or not value.startswith("bytes=") or not value.endswith("-"):
                return None
            return int(value[len("bytes=") : -1])

        def _status(self, code: int) -> None:
            body = f"HTTP {code}\n".encode()
            headers = {"Retry-After": "0"} if code in (429, 503) else {}
            self._send(code, body, "text/plain", headers)

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str,
            headers: dict[str, str] | None = None,
            *,
            send: int | None = None,
            drop: bool = False,
            stall: float = 0.0,
            rate: float | None = None,
            step: int | None = None,
            gate: threading.Event | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if rate is not None:
                step = step or max(1, int(rate / 50))
                for i in range(0, len(body), step):
                    self.wfile.write(body[i : i + step])
                    self.wfile.flush()
                    time.sleep(step / rate)
                return
            self.wfile.write(body if send is None else body[:send])
            if gate is not None:
                self.wfile.flush()
                gate.wait()
                self.wfile.write(body[send:])
                return
            if stall:
                time.sleep(stall)
            if drop or stall:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
