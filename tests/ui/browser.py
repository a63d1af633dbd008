"""A real headless Chromium, driven from Python (tests and benchmarks/bench_ui.py).

``Browser()`` starts ``node tests/ui/browser_driver.mjs`` (playwright-core from
tests/js/node_modules with /usr/bin/chromium) and sends it one command per
call; ``UIServer(app)`` serves a Starlette app with uvicorn on a free loopback
port in a thread.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("browser_driver.mjs")
SCREENSHOTS = ROOT / "ui-screenshots"


class BrowserError(AssertionError):
    """A browser command failed (a selector never appeared, a script threw)."""


class Browser:
    def __init__(self) -> None:
        node = shutil.which("node")
        missing = [
            what
            for what, ok in (
                ("node", node),
                ("/usr/bin/chromium", Path("/usr/bin/chromium").exists()),
                ("playwright-core", (ROOT / "tests/js/node_modules/playwright-core").exists()),
            )
            if not ok
        ]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: run `bash .ci/install-test-peers`")
        self.proc = subprocess.Popen(
            [node, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(DRIVER.parent),
        )

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver exited during {op}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(f"{op} {args}: {answer['error']}")
        return answer["value"]

    # the commands, by name
    def goto(self, url: str, wait_until: str = "load", timeout: int = 60000) -> None:
        """Navigate; ``wait_until`` is playwright's (load, domcontentloaded, commit)."""
        self.call("goto", url=url, waitUntil=wait_until, timeout=timeout)

    def wait(self, selector: str, state: str = "visible", timeout: int = 15000) -> None:
        self.call("wait", selector=selector, state=state, timeout=timeout)

    def wait_for(self, js: str, timeout: int = 15000) -> None:
        self.call("waitFn", js=js, timeout=timeout)

    def eval(self, js: str) -> Any:
        return self.call("eval", js=js)

    def click(self, selector: str) -> None:
        self.call("click", selector=selector)

    def fill(self, selector: str, text: str) -> None:
        self.call("fill", selector=selector, text=text)

    def press(self, selector: str, key: str) -> None:
        self.call("press", selector=selector, key=key)

    def text(self, selector: str) -> str:
        return self.call("text", selector=selector)

    def texts(self, selector: str) -> list[str]:
        return self.call("texts", selector=selector)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.call("screenshot", path=str(path))
        return path

    def events(self, clear: bool = False) -> dict[str, list[str]]:
        """The dialogs opened and the errors the page logged (then forgotten if ``clear``)."""
        return self.call("events", clear=clear)

    def new_page(self) -> None:
        self.call("newPage")

    def close(self) -> None:
        try:
            self.call("close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UIServer:
    """``app`` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the UI test server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
