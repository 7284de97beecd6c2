"""Headless Chromium for the page tests: the DOM after the page's scripts ran, its console, a screenshot.

Debian's `chromium` package (make system-deps installs it). Without it the tests skip, except where
they could have installed it (root with apt): there a missing browser is a failure, so CI runs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? ?(.*)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("headless Chromium is missing: `make system-deps` installs Debian's chromium package")
    pytest.skip("headless Chromium is not installed (Debian package chromium; `make system-deps` as root)")


def _run(url: str, tmp: Path, extra: list[str]) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120)


def render(url: str, tmp: Path, screenshot_name: str = "page.png") -> dict:
    """The rendered DOM, the console messages, and a screenshot written into ``tmp``."""
    dom = _run(url, tmp, ["--dump-dom"])
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [m.group(1) for m in map(CONSOLE.search, dom.stderr.splitlines()) if m]
    shot = tmp / screenshot_name
    result = _run(url, tmp, ["--window-size=1280,2200", f"--screenshot={shot}"])
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    print(f"screenshot of {url}: {shot}")
    return {"dom": dom.stdout, "console": console, "screenshot": shot}


def element_text(dom: str, element_id: str) -> str:
    m = re.search(rf'<[a-z]+[^>]*\bid="{re.escape(element_id)}"[^>]*>([^<]*)<', dom)
    assert m, f"no element #{element_id} in the rendered page"
    return m.group(1)


def count_class(dom: str, name: str) -> int:
    return len(re.findall(rf'class="(?:[^"]* )?{re.escape(name)}(?: [^"]*)?"', dom))
