"""Run the web app in a background thread on a free loopback port: for browser tests, the README's
screenshots, and anything else that needs a real HTTP server for a while.

    with BackgroundServer(create_app([runs_dir], bundled=False)) as url:
        ...  # url == "http://127.0.0.1:<port>/"
"""

from __future__ import annotations

import threading
import time


class BackgroundServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0,
                 body_limit: int | None = None) -> None:
        import uvicorn

        from .app import MAX_BODY
        from .wire import limited_protocol

        # The HTTP protocol of `rnnlab serve`: request bodies counted on the wire (``body_limit`` bytes).
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                                     http=limited_protocol(body_limit or MAX_BODY))
        self.server = uvicorn.Server(self.config)
        self.timeout = timeout
        self.thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> str:
        self.thread = threading.Thread(target=self.server.run, name="rnnlab-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}/"
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=self.timeout)
