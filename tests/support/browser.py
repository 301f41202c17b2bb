"""Headless Chromium for browser tests: Debian's `chromium` package driven by playwright.

The browser is never downloaded: `make setup-dev` installs the distribution's package, and
playwright is pointed at its executable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Watched:
    """A page with everything it reported: console messages, uncaught errors, dialogs it opened."""

    page: object
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"] + self.errors


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator[Watched]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup-dev` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            watched = Watched(page)
            page.on("console", lambda m: watched.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: watched.errors.append(str(e)))

            def on_dialog(dialog) -> None:
                watched.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            yield watched
        finally:
            browser.close()


def screenshot(watched: Watched, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    watched.page.screenshot(path=str(path), full_page=True)
    return path
