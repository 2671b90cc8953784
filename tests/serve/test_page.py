"""The web page in a real headless browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LUOXIA_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
# Without the background-networking flags, Chromium keeps trying to reach Google on a closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (`make test` installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def test_chat_streams_into_the_page_and_completion_shows_its_label(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#api_key", "test-key")
    page.dispatch_event("#api_key", "change")
    page.fill("#temperature", "0")
    page.fill("#max_tokens", "24")
    page.fill("#chat-input", "Hello, who are you?")
    page.click("#chat-send")
    answer = page.locator("#chat-log .assistant").first
    page.wait_for_function("document.querySelector('#chat-log .meta')?.textContent.includes('AIGC label 1')",
                           timeout=30_000)
    expected = server.text.chat("Hello, who are you?", max_new_tokens=24).text
    assert answer.text_content().startswith(expected.strip()[:10])
    assert "AI-generated" in answer.text_content()  # the visible notice arrives with the stream
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-chat.png"), full_page=True)

    page.click("nav button[data-tab=complete]")
    page.fill("#complete-prompt", "The quick")
    page.click("#complete-send")
    page.wait_for_function("document.querySelector('#complete-meta').textContent.includes('ProduceID')",
                           timeout=30_000)
    assert page.text_content("#complete-output").startswith("The quick")
    page.screenshot(path=str(ARTIFACTS / "serve-complete.png"), full_page=True)
    page.close()


def test_a_wrong_key_shows_the_error_in_the_page(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#api_key", "wrong")
    page.fill("#chat-input", "Hi")
    page.click("#chat-send")
    page.wait_for_selector("#chat-log .error", timeout=30_000)
    assert "API key" in page.text_content("#chat-log .error")
    page.close()


def test_the_image_tab_shows_a_grid_with_labelled_downloads(browser, image_server):
    import base64

    running, images = image_server
    page = browser.new_page()
    page.goto(running.url + "/")
    page.fill("#api_key", "test-key")
    page.click("nav button[data-tab=image]")
    page.fill("#image-prompt", "a three")
    page.fill("#image-n", "4")
    page.fill("#image-steps", "3")
    page.click("#image-send")
    page.wait_for_selector("#image-grid figure:nth-child(4) img", timeout=60_000)
    href = page.get_attribute("#image-grid figure a", "href")
    png = base64.b64decode(href.split(",", 1)[1])
    path = ARTIFACTS / "serve-image-download.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    from luoxia.safety.inspect import inspect

    assert inspect(path).status == "labelled"  # the download is the labelled file
    page.screenshot(path=str(ARTIFACTS / "serve-image.png"), full_page=True)
    page.close()
