"""Headless Chromium over WebDriver (Debian's chromium and chromium-driver), with only the
standard library: enough to open a page, run scripts in it and time what it draws."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, width=1400, height=1000):
        if not shutil.which("chromedriver") or not os.path.exists("/usr/bin/chromium"):
            raise RuntimeError("needs Debian's chromium and chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="canopy-bench-chromium-")
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromedriver did not listen within 20 s")
                time.sleep(0.05)
        options = {"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            f"--window-size={width},{height}", "--no-first-run",
                            f"--user-data-dir={self.profile}"]}
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": options, "timeouts": {"script": 600000}}}})
        self.session = f"/session/{answer['sessionId']}"

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=900) as response:
            return json.loads(response.read() or b"{}").get("value")

    def goto(self, url):
        self._call("POST", f"{self.session}/url", {"url": url})

    def run(self, script, *args):
        """Runs `script` (a function body) in the page and returns what it returns."""
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, *args):
        """Runs `script` with a callback as its last argument and returns what it passes it."""
        return self._call("POST", f"{self.session}/execute/async", {"script": script, "args": list(args)})

    def close(self):
        try:
            self._call("DELETE", self.session)
        except OSError:
            pass
        try:
            os.killpg(self.driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.driver.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
