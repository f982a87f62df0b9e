"""The one Chromium the browser tests share (tests/serving.SharedChromium) is fresh for each:
what a test leaves behind (a cookie, local storage, a log line, a second window) is gone for the
next, even on the same origin, and downloads land in each test's own folder."""

from __future__ import annotations

from pathlib import Path

from tests.serving import start_web


def test_a_test_finds_nothing_an_earlier_test_left(shared_chromium, tmp_path: Path) -> None:
    web = start_web(tmp_path)
    try:
        first = shared_chromium.page(tmp_path / "one")
        first.get(web.url)  # the token URL: sets the session cookie
        assert first.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
        first.execute_script(
            "localStorage.setItem('left', 'behind'); sessionStorage.setItem('left', 'behind');"
            "console.error('an earlier test');"
        )
        first.switch_to.new_window("tab")
        first.execute_script("console.error('an earlier test')")

        second = shared_chromium.page(tmp_path / "two")
        assert second is first  # the same browser, not a new one
        assert len(second.window_handles) == 1
        assert second.get_log("browser") == []
        assert second.downloads == tmp_path / "two"
        second.get(web.base + "/static/does-not-matter")
        assert second.get_cookies() == []
        assert second.execute_script("return localStorage.length + sessionStorage.length") == 0
    finally:
        web.stop()
