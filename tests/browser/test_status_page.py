"""The status page in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven
by selenium) loads `/` from the real HTTP app over a lab-like rack frozen mid-install, and we check
what a person would see, that nothing from the network became markup, and that the console is clean.
"""

from __future__ import annotations

import shutil

import pytest

from app.events import PHASES
from tests.browser import lab_page

DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(lab_page.chromium() is None or DRIVER is None,
                                reason="needs Chromium and its driver (Debian: apt-get install chromium "
                                       "chromium-driver)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page as the browser rendered it: the driver stays open for the module's tests."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (`make test` installs it)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in lab_page.CHROMIUM_FLAGS + ["--window-size=1000,1600"]:
        options.add_argument(flag)
    options.binary_location = lab_page.chromium()
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with lab_page.serving(tmp_path_factory.mktemp("rack")) as url:
        driver = webdriver.Chrome(options=options, service=Service(DRIVER))
        try:
            driver.get(url + "/")
            yield driver
        finally:
            driver.quit()


def rows(driver) -> dict[str, object]:
    return {row.find_element("css selector", ".name").text: row
            for row in driver.find_elements("css selector", "article.node")}


def test_every_node_has_a_row_with_its_phase(page):
    shown = rows(page)
    assert list(shown) == [n.name for n in lab_page.lab_nodes()]
    for node in lab_page.lab_nodes():
        row = shown[node.name]
        assert node.mac in row.text
        assert row.find_element("css selector", ".phase").text == (node.reached or "pending")
    assert "waiting for its first PXE boot" in shown["worker-13"].text


def test_timelines_draw_one_segment_per_phase_reached_with_durations(page):
    shown = rows(page)
    for node in lab_page.lab_nodes():
        reached = PHASES.index(node.reached) + 1 if node.reached else 0
        rects = shown[node.name].find_elements("css selector", "svg.timeline rect")
        assert len(rects) == reached + node.failed, node.name  # a failed node gets a red end mark
        chips = shown[node.name].find_elements("css selector", "ol.phases li")
        assert [c.text.split(" ")[0] for c in chips] == PHASES[:reached]
    # The durations are text a person reads, from the rack's pace: kernel took 50 seconds everywhere.
    assert "kernel 50s" in shown["ctrl-01"].text and "installing 4m 00s" in shown["ctrl-01"].text
    ready_rect = shown["ctrl-01"].find_elements("css selector", "svg.timeline rect title")
    # <title> is the hover text; the browser keeps it out of the visible text, so read it as content.
    assert any("kernel: 50s" in t.get_attribute("textContent") for t in ready_rect)


def test_the_failed_node_says_what_went_wrong_as_text(page):
    error = rows(page)["worker-12"].find_element("css selector", ".error")
    assert error.is_displayed()
    assert error.text == f"failed during installing: {lab_page.HOSTILE_ERROR}"


def test_the_download_in_progress_shows_bytes_of_the_image_size(page):
    download = rows(page)["worker-06"].find_element("css selector", ".download")
    bar = download.find_element("css selector", "progress")
    assert int(bar.get_attribute("value")) == lab_page.IMAGE_SENT
    assert int(bar.get_attribute("max")) == lab_page.IMAGE_SIZE
    assert "301.0 MiB of 456.0 MiB (66%)" in download.text
    assert not rows(page)["ctrl-01"].find_elements("css selector", ".download")  # installed: no bar


def test_summary_line(page):
    assert page.find_element("id", "summary").text == "installed 5/13 · API up since 09:23:25 · Ready 1/13 · 1 failed"


def test_alerts_panel_groups_by_reason_with_counts_and_first_and_last_sender(page):
    alerts = page.find_element("id", "alerts").text
    assert ("2× callback with a missing or wrong credential (first from 10.99.0.77 at 09:16:40, "
            "last from 10.99.0.78 at 09:20:00") in alerts
    assert f"1× asked from a machine other than the one that PXE-booted (first from {lab_page.HOSTILE_SENDER}" in alerts
    assert "1× dnsmasq restarted" in alerts
    assert f"{lab_page.WRITE_FAILURES}× an event could not be written to events.jsonl" in alerts
    assert f"{lab_page.STRANGER} from 10.99.0.150" in alerts


def test_hostile_strings_are_text_not_markup(page):
    alerts = page.find_element("id", "alerts")
    assert f"{lab_page.HOSTILE_MAC} from {lab_page.HOSTILE_ADDRESS}" in alerts.text
    # Had any of them become markup there would be an <img>, a <b> or a second <script> in the DOM.
    assert page.find_elements("css selector", "img, script, b") == []
    assert page.execute_script("return document.title") == "bootstrap-node status"


def test_no_console_errors(page):
    assert [entry for entry in page.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")] == []


def test_readable_on_a_phone(page):
    """At a phone's width the page does not scroll sideways, and each row stacks its parts."""
    page.set_window_size(390, 844)
    try:
        assert page.execute_script("return document.documentElement.scrollWidth") <= \
            page.execute_script("return window.innerWidth")
        row = rows(page)["worker-12"]
        who = row.find_element("css selector", ".who").rect
        timeline = row.find_element("css selector", "svg.timeline").rect
        assert timeline["y"] > who["y"] + who["height"] - 1  # below the name, not beside it
    finally:
        page.set_window_size(1000, 1600)
