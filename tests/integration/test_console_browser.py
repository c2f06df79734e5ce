"""The /ui console in real headless Chromium (Debian's ``chromium``, driven by Playwright).

A ``gf serve`` with a token over a git repository of the search corpus, where one
function has two versions. The browser loads the page, gives the token, searches as a
person types, opens a function, shows the diff between its versions, writes a
description, runs a call through the form built from the signature and sees the result.
A screenshot is kept under the test's tmp dir (its path is printed).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serve_support import ServerProcess

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "console-test-token-0123456789"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed: run scripts/system-deps.sh (apt-get install chromium)"
        )
    root = tmp_path / "funcs"
    shutil.copytree(CORPUS, root)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "corpus")
    first = ServerProcess.gf(root, "save", "--all").run()
    assert first.returncode == 0, first.stderr
    clamp = root / "Math" / "clamp.py"
    clamp.write_text(
        clamp.read_text().replace("max(low, min(high, value))", "min(high, max(low, value))")
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    proc = ServerProcess.gf(root, "serve", env={"GF_TOKEN_FILE": str(token_file)}).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_console_in_chromium(server: ServerProcess, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "ui")
            expect(page.locator("#status")).to_contain_text("token")  # the API refused it
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            expect(page.locator("#status")).to_contain_text("52 functions")

            page.type("#search", "distance between gps coordinates", delay=10)
            first = page.locator("#list a").first
            expect(first).to_contain_text("Math.haversine_km")

            page.fill("#search", "")
            page.type("#search", "limit a number", delay=10)
            expect(page.locator("#list a").first).to_contain_text("Math.clamp")
            page.locator("#list a").first.click()
            expect(page.locator("#fn-name")).to_have_text("Math.clamp")
            expect(page.locator("#versions li")).to_have_count(2)
            page.locator(".diff-button").first.click()
            expect(page.locator("#diff .del")).to_contain_text("max(low, min(high, value))")
            expect(page.locator("#diff .add")).to_contain_text("min(high, max(low, value))")

            page.fill("#description", "keeps a value inside bounds")
            page.click("#describe-form button")
            expect(page.locator("#status")).to_contain_text("description saved")
            page.fill("#search", "")
            page.type("#search", "inside bounds", delay=10)
            expect(page.locator("#list a").first).to_contain_text("Math.clamp")

            page.fill("#call-form input[name=value]", "15")
            page.fill("#call-form input[name=low]", "0")
            page.fill("#call-form input[name=high]", "10")
            page.click("#call-form button")
            expect(page.locator("#call-result")).to_have_text("result: 10")
            expect(page.locator("#workers")).to_contain_text("mode")

            shot = tmp_path / "console.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"console screenshot: {shot}")
        finally:
            browser.close()
