"""A loopback HTTP server streaming MJPEG (multipart/x-mixed-replace), as IP cameras do.

Each connection gets the frames from the start; ``drop_after`` cuts the first connection
after that many frames (the stream "drops"), the next streams to the end and closes; any
connection after those is refused with 404 (the camera is gone for good). ``drop_every``
instead cuts every connection after that many frames and always lets the client back in (a
camera that keeps dropping); ``stall_after`` makes every connection go silent after that many
frames, the socket left open (a stalled server). ``connections`` counts how many times a
client opened the stream.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = b"yolocliframe"


class MjpegServer:
    def __init__(
        self,
        frames: list[bytes],
        drop_after: int | None = None,
        fps: float = 50,
        drop_every: int | None = None,
        stall_after: int | None = None,
    ) -> None:
        self.frames = frames
        self.drop_after = drop_after
        self.drop_every = drop_every
        self.stall_after = stall_after
        self.closed = threading.Event()
        self.delay = 1 / fps
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.connections += 1
                first = server.connections == 1
                limited = server.drop_every is None and server.stall_after is None
                if limited and server.connections > 1 + (server.drop_after is not None):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header(
                    "Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY.decode()}"
                )
                self.end_headers()
                try:
                    for i, jpeg in enumerate(server.frames):
                        if first and server.drop_after is not None and i == server.drop_after:
                            self.connection.shutdown(2)  # a dropped connection, mid-stream
                            return
                        if i == server.drop_every:
                            self.connection.shutdown(2)
                            return
                        if i == server.stall_after:
                            server.closed.wait()  # silent, the connection left open
                            return
                        self.wfile.write(
                            b"--"
                            + BOUNDARY
                            + b"\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(server.delay)
                except OSError:
                    return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()
