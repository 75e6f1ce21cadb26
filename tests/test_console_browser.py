"""The console in a real browser: Debian's Chromium through Selenium, against a real mosquitto.

The test publishes the daemon's payloads (events v2 from two cameras, a coil report, stats,
status) and runs `edge console` as its own process on an archive folder with real images. Each
view is opened, checked for JavaScript console errors and photographed into
test-artifacts/console/ (or $STEEL_INSPECT_ARTIFACTS/console/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests import console_payloads as p
from tests.fixtures.broker import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("STEEL_INSPECT_ARTIFACTS", REPO / "test-artifacts")) / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOPIC = "steel-inspect/L1/{camera}/{kind}"


class Daemons:
    """Publishes what two daemons (cam1 top-left, cam2 beside it) would."""

    def __init__(self, broker) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.frames = 0
        self.seq = 0

    def publish(self, camera: str, kind: str, payload: dict, retain: bool = False) -> None:
        p.schema_valid(kind, payload)
        self.client.publish(TOPIC.format(camera=camera, kind=kind),
                            json.dumps(payload, allow_nan=False), qos=1, retain=retain)

    def tick(self, events: int = 2, images: list[str] | None = None) -> None:
        self.frames += 5
        for camera in ("cam1", "cam2"):
            self.publish(camera, "stats", p.stats(camera, self.frames))
        for i in range(events):
            self.seq += 1
            camera, offset = ("cam1", 0.0) if i % 2 == 0 else ("cam2", 1000.0)
            image = images[self.seq % len(images)] if images else None
            self.publish(camera, "defects", p.event(
                camera, "C1", self.seq, self.seq * 0.4, class_id=1 + self.seq % 3,
                score=0.55 + (self.seq % 9) * 0.05, cd_offset_mm=offset, image=image))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        # as scripts/test does; apt needs root, else it says what to run
        result = subprocess.run([REPO / "scripts/ensure-chromium"], capture_output=True,
                                text=True, timeout=900)
        if result.returncode != 0:
            pytest.fail(result.stderr.strip() or "scripts/ensure-chromium failed")
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def console(tmp_path, mqtt_broker):
    archive = tmp_path / "archive"
    images = p.make_archive(archive)
    port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(f"""
[site]
line = "L1"
camera = "cam1"
[camera]
type = "replay"
path = "frames"
[model]
path = "model.onnx"
[mqtt]
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
reconnect = {{ initial = 0.2, max = 0.5 }}
[outbox]
path = "outbox.sqlite"
[console]
listen = "127.0.0.1:{port}"
archive_path = "{archive}"
page_size = 60
""")
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "console", "--config",
                                str(config)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(url + "/api/state", timeout=1).status == 200
        except OSError:
            return False

    try:
        assert wait_until(up, 40), "console did not start"
        yield url, images, archive
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
        # uvicorn re-raises the SIGTERM it handled after its graceful shutdown (systemd: clean)
        assert process.returncode in (0, -15) and "Traceback" not in err, err[-2000:]


def js_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shoot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text_of(driver, css: str) -> str:
    """The element's text, read in the page in one step: the live view re-renders its elements,
    so a reference found first may be stale by the time its text is read."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def test_live_view_updates_without_reload_and_shows_a_broker_outage(
        browser, console, mqtt_broker):
    url, images, _ = console
    daemons = Daemons(mqtt_broker)
    try:
        for camera in ("cam1", "cam2"):
            daemons.publish(camera, "status", p.status(camera), retain=True)
        daemons.tick(images=images)
        browser.get(url + "/")
        browser.execute_script("window.__noReload = 42;")
        frames = '#cam-cam1 dd[data-field="frames"]'
        assert wait_until(lambda: text_of(browser, frames) == "5", 30), text_of(browser, frames)
        assert wait_until(lambda: browser.execute_script(
            "return [...document.querySelectorAll('canvas.frame')]"
            ".every(c => Number(c.dataset.loaded) === 1024)"), 30), "latest frames not drawn"
        daemons.tick(images=images)
        assert wait_until(lambda: text_of(browser, frames) == "10", 30)
        assert browser.execute_script("return window.__noReload") == 42
        assert "broker connected" in text_of(browser, "#conn")
        shoot(browser, "live")

        mqtt_broker.stop()
        assert wait_until(lambda: "disconnected" in text_of(browser, "#conn"), 40)
        assert "disconnected" in text_of(browser, "#broker-state")
        shoot(browser, "live-disconnected")
        mqtt_broker.start()
        assert wait_until(lambda: "broker connected" in text_of(browser, "#conn"), 40)
        assert wait_until(lambda: daemons.client.is_connected(), 30)
        daemons.tick(images=images)
        assert wait_until(lambda: text_of(browser, frames) == "15", 30)
        assert browser.execute_script("return window.__noReload") == 42
        assert js_errors(browser) == []
    finally:
        daemons.close()


def test_coil_gallery_and_commissioning_views(browser, console, mqtt_broker):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    url, images, _ = console
    daemons = Daemons(mqtt_broker)
    try:
        daemons.tick(events=12, images=images)
        daemons.publish("cam1", "coils", p.coil_report("cam1", "C0", map_png="maps/C0-cam1.png"))
        assert wait_until(lambda: json.load(urllib.request.urlopen(url + "/api/state"))
                          ["received"].get("defects", 0) == 12, 30)

        browser.get(url + "/coils/C1")
        points = ("return [...document.querySelectorAll('canvas.map-canvas')]"
                  ".map(c => c.dataset.points)")
        assert wait_until(lambda: browser.execute_script(points) == ["12"], 30)
        daemons.tick(events=4, images=images)  # the map grows while the page is open
        assert wait_until(lambda: browser.execute_script(points) == ["16"], 30)
        shoot(browser, "coil-current")
        assert js_errors(browser) == []

        browser.get(url + "/coils/C0")
        assert browser.execute_script(
            "const i = document.querySelector('img.coilmap-image');"
            "return i && i.naturalWidth") == 80
        shoot(browser, "coil-past")

        browser.get(url + "/defects")
        tiles = lambda: browser.find_elements(By.CSS_SELECTOR, "#gallery .tile")  # noqa: E731
        everything = len(tiles())
        assert everything == 16
        assert wait_until(lambda: browser.execute_script(
            "return [...document.querySelectorAll('#gallery img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"), 30), "gallery images did not load"
        shoot(browser, "defects")
        Select(browser.find_element(By.NAME, "class")).select_by_visible_text("scratches")
        browser.find_element(By.ID, "apply").click()
        assert wait_until(lambda: "class=scratches" in browser.current_url, 20)
        narrowed = len(tiles())
        assert 0 < narrowed < everything
        assert {t.text.split(" 0.")[0] for t in tiles()} == {"scratches"}
        tiles()[0].click()
        assert wait_until(lambda: browser.execute_script(
            "const i = document.getElementById('defect-image');"
            "return i && i.complete && i.naturalWidth") == 128, 30)
        assert "scratches" in text_of(browser, "h1")
        shoot(browser, "defect")
        assert js_errors(browser) == []

        browser.get(url + "/commissioning?camera=cam2")
        assert wait_until(lambda: browser.execute_script(
            "return Number(document.getElementById('commission').dataset.loaded)") == 1024, 30)
        assert wait_until(lambda: len(browser.find_elements(
            By.CSS_SELECTOR, "#tile-table tr")) == 5, 30)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#tile-table td.over")) == 1
        shoot(browser, "commissioning")
        assert js_errors(browser) == []

        browser.get(url + "/coils/NO-SUCH-COIL")
        assert "404" in text_of(browser, "h1")
        browser.get(url + "/archive/..%2f..%2fedge.toml")
        assert "edge.toml" not in browser.page_source or "not in the archive" in browser.page_source
        assert "[mqtt]" not in browser.page_source
    finally:
        daemons.close()
