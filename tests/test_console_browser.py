"""The console in a real browser: Debian's Chromium through Selenium, against a real mosquitto.

The main test runs the line as it runs on a line PC: `edge run` replaying generated frames (the
tiny mean model, L2 coil tracking over MQTT, the image archive and the latest frame on) and
`edge console` on the same config, so on the same broker and archive, each its own process. Each
view is opened, checked for JavaScript console errors and photographed into
test-artifacts/console/ (or $STEEL_INSPECT_ARTIFACTS/console/; scripts/console-screenshots copies
two of them into the README). One daemon is one camera: the map of a line with two cameras is
tested with the payloads published from the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests import console_payloads as p
from tests.fixtures.broker import free_port, wait_until
from tests.fixtures.coils import HEIGHT, WIDTH, L2Publisher
from tests.fixtures.edge_daemon import DaemonProcess, daemon_sections, write_config, write_frames

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("STEEL_INSPECT_ARTIFACTS", REPO / "test-artifacts")) / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOPIC = "steel-inspect/L1/{camera}/{kind}"
L2_TOPIC = "l2/L1/coil"
# with these thresholds the mean model reports by a tile's mean grey level: >= 128 rolled-in
# scale, >= 153 also scratches, >= 204 also rolling films (tests.fixtures.edge_daemon)
THRESHOLDS = '[events]\nthresholds = { scratches = 0.3, "rolling films" = 0.2 }\n'
TILE = 256


@pytest.fixture(scope="module")
def chromium():
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
def browser(chromium):
    """The module's Chromium on a blank page, with the previous test's console messages (its
    page polling a console that has stopped) read away."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    return chromium


def steel_frame(rng, defects: list[tuple[int, int, int]]) -> np.ndarray:
    """A brushed-steel frame of 4 x 2 tiles; each (column, row, grey) paints a streaky defect
    over most of that tile, so the tile's mean is close to `grey`."""
    # rolling marks along MD (per row) and a shading across: no per-pixel noise, so that the
    # README's screenshots stay small PNGs
    x = np.linspace(0, 1, WIDTH)[None, :]
    image = 60 + 12 * np.sin(9 * x) + rng.normal(0, 3, (HEIGHT, 1))
    for column, row, grey in defects:
        patch = grey + 10 * np.sin(np.arange(TILE) / 5)[:, None] + rng.normal(0, 4, (1, TILE))
        image[row * TILE:(row + 1) * TILE, column * TILE:(column + 1) * TILE] = patch
    return np.clip(image, 0, 255).astype(np.uint8)


def replay_frames(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    defects = [[(0, 0, 150)], [(2, 1, 185)], [], [(1, 0, 235), (3, 1, 150)], [], [(3, 0, 185)]]
    return write_frames(folder, {f"{i:03d}.png": steel_frame(rng, d)
                                 for i, d in enumerate(defects)})


class Console:
    """`edge console` as a child process, and its HTTP address."""

    def __init__(self, config: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = DaemonProcess(config, command="console")

    def state(self) -> dict:
        try:
            with urllib.request.urlopen(self.url + "/api/state", timeout=2) as response:
                return json.load(response)
        except OSError:
            return {}

    def received(self, kind: str) -> int:
        return self.state().get("received", {}).get(kind, 0)

    def classes_of(self, coil: str) -> set[str]:
        try:
            with urllib.request.urlopen(f"{self.url}/api/coils/{coil}", timeout=2) as response:
                return {point["class_name"] for point in json.load(response)}
        except OSError:
            return set()


def stop(process: DaemonProcess) -> int:
    try:
        process.signal(signal.SIGTERM)
        return process.wait(30)
    finally:
        process.stop()


@pytest.fixture
def replay_line(tmp_path, mqtt_broker, mean_model):
    """A replaying daemon (cam1) and the console, on one config, broker and archive."""
    port = free_port()
    sections = daemon_sections(
        tmp_path, mqtt_broker, mean_model, replay_frames(tmp_path / "frames"),
        camera={"rate": 4, "loop": True},
        geometry={"mm_per_px_cd": 1.5, "mm_per_px_md": 1.0, "cd_offset_mm": 50.0},
        tracking={"source": "mqtt", "topic": L2_TOPIC},
        archive={"path": str(tmp_path / "archive"), "whole_frame": True, "latest_frame_s": 0.25},
        console={"listen": f"127.0.0.1:{port}", "page_size": 60},
    )
    config = write_config(tmp_path / "edge.toml", sections)
    config.write_text(config.read_text() + THRESHOLDS)  # a key with a space: quoted
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)
    l2.send({"coil_id": "A", "length_m": 9.0})  # retained: the daemon takes it at start
    daemon = DaemonProcess(config)
    console = Console(config, port)
    try:
        yield daemon, console, l2
        assert stop(daemon) == 0, daemon.log[-3000:]
        # uvicorn re-raises the SIGTERM it handled after its graceful shutdown (systemd: clean)
        assert stop(console.process) in (0, -15), console.process.log[-3000:]
        assert "Traceback" not in console.process.log + daemon.log
    finally:
        daemon.stop()
        console.process.stop()
        l2.close()


def js_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shoot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text_of(driver, css: str) -> str:
    """The element's text, read in the page in one step: the live view re-renders its elements,
    so a reference found first may be stale by the time its text is read."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def number_of(driver, css: str) -> int:
    text = text_of(driver, css)
    return int(text) if text.isdigit() else -1


def all_images_loaded(driver, css: str) -> bool:
    return driver.execute_script(
        "const i = [...document.querySelectorAll(arguments[0])];"
        "return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0)", css)


def after_reload(driver, url: str, condition, timeout: float = 30.0) -> bool:
    """Whether `condition` holds on the page at `url`, loaded again until it does (for what the
    server renders into the page)."""
    def loaded_and_true() -> bool:
        driver.get(url)
        return wait_until(condition, 0.5)

    return wait_until(loaded_and_true, timeout, interval=0.2)


MAP_POINTS = ("return [...document.querySelectorAll('canvas.map-canvas')]"
              ".map(c => Number(c.dataset.points))")


def test_every_view_against_a_replaying_daemon(browser, replay_line, mqtt_broker):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    daemon, console, l2 = replay_line
    running = lambda: daemon.process.poll() is None and console.process.process.poll() is None  # noqa: E731
    assert wait_until(lambda: not running() or console.received("defects") >= 4, 90)
    assert running(), \
        daemon.log[-2000:] + console.process.log[-2000:]

    # Live: the daemon's counters move without a reload, its latest frame is drawn
    browser.get(console.url + "/")
    browser.execute_script("window.__noReload = 42;")
    frames = '#cam-cam1 dd[data-field="frames"]'
    assert wait_until(lambda: number_of(browser, frames) > 0, 30), text_of(browser, "#cameras")
    first = number_of(browser, frames)
    assert wait_until(lambda: number_of(browser, frames) > first, 30)
    assert wait_until(lambda: browser.execute_script(
        "const c = document.querySelector('canvas.frame');"
        "return c && Number(c.dataset.loaded)") == WIDTH, 30), "latest frame not drawn"
    assert wait_until(lambda: browser.execute_script(  # one with its defects boxed
        "return Number(document.querySelector('canvas.frame').dataset.defects)") > 0, 30)
    assert wait_until(lambda: text_of(browser, '#cam-cam1 dd[data-field="coil"]') == "A", 30)
    assert wait_until(lambda: text_of(browser, '#cam-cam1 dd[data-field="status"]') == "online")
    assert "broker connected" in text_of(browser, "#conn")
    assert browser.execute_script("return window.__noReload") == 42
    shoot(browser, "live")
    assert js_errors(browser) == []

    # Coils: A ends (its report and map PNG arrive), B's map grows while the page is open
    assert wait_until(lambda: len(console.classes_of("A")) == 3, 60)  # frame 3 of the loop
    l2.send({"coil_id": "B"})
    assert wait_until(lambda: console.received("coils") == 1, 60), daemon.log[-2000:]
    # the archive writes the PNG a moment after the report goes out: a page loaded before
    # shows the report without it
    assert after_reload(browser, console.url + "/coils/A",
                        lambda: all_images_loaded(browser, "img.coilmap-image"))
    assert browser.execute_script(
        "return document.querySelector('img.coilmap-image').naturalWidth") == 1600
    assert wait_until(lambda: (browser.execute_script(MAP_POINTS) or [0])[0] >= 4, 30)
    shoot(browser, "coil-past")
    assert after_reload(browser, console.url + "/coils",  # the current coil: from the stats
                        lambda: text_of(browser, ".coil-link") == "B")
    browser.get(console.url + "/coils/B")
    assert wait_until(lambda: (browser.execute_script(MAP_POINTS) or [0])[0] >= 1, 30)
    seen = browser.execute_script(MAP_POINTS)[0]
    assert wait_until(lambda: browser.execute_script(MAP_POINTS)[0] > seen, 30)
    assert browser.execute_script(MAP_POINTS) == [browser.execute_script(MAP_POINTS)[0]]
    shoot(browser, "coil-current")
    assert js_errors(browser) == []

    # Defects: the archive's crops load; coil A (ended: a fixed set) narrowed by class
    browser.get(console.url + "/defects")
    assert wait_until(lambda: all_images_loaded(browser, "#gallery img"), 30)
    shoot(browser, "defects")
    Select(browser.find_element(By.NAME, "coil")).select_by_visible_text("A")
    browser.find_element(By.ID, "apply").click()
    assert wait_until(lambda: "coil=A" in browser.current_url, 20)
    captions = lambda: [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#gallery .cap")]  # noqa: E731
    total = lambda: int(text_of(browser, "#gallery-total").split()[0])  # noqa: E731
    of_a = total()
    assert len({c.split(" 0.")[0] for c in captions()}) == 3, captions()  # all three classes
    Select(browser.find_element(By.NAME, "class")).select_by_visible_text("scratches")
    browser.find_element(By.ID, "apply").click()
    assert wait_until(lambda: "class=scratches" in browser.current_url, 20)
    assert 0 < total() < of_a
    assert all(c.startswith("scratches ") and c.endswith(" · cam1 · A") for c in captions())
    assert all_images_loaded(browser, "#gallery img")
    browser.find_element(By.CSS_SELECTOR, "#gallery .tile").click()
    assert wait_until(lambda: all_images_loaded(browser, "#defect-image"), 30)
    assert text_of(browser, "h1").startswith("scratches")
    full_frame = browser.find_element(By.LINK_TEXT, "Full frame").get_attribute("href")
    with urllib.request.urlopen(full_frame, timeout=5) as response:
        assert response.headers["content-type"] == "image/jpeg"
    shoot(browser, "defect")
    assert js_errors(browser) == []

    # Commissioning: the full frame, its tile grid and every tile's scores
    browser.get(console.url + "/commissioning?camera=cam1")
    assert wait_until(lambda: browser.execute_script(
        "return Number(document.getElementById('commission').dataset.loaded)") == WIDTH, 30)
    assert wait_until(lambda: len(browser.find_elements(
        By.CSS_SELECTOR, "#tile-table tr")) == 1 + 8, 30)
    shoot(browser, "commissioning")
    assert js_errors(browser) == []

    browser.get(console.url + "/coils/NO-SUCH-COIL")
    assert "404" in text_of(browser, "h1")
    browser.get(console.url + "/archive/..%2f..%2fedge.toml")
    assert "[mqtt]" not in browser.page_source
    assert all("404 (Not Found)" in e for e in js_errors(browser))  # the two refusals only

    # the broker goes away: the page says so, then both processes come back by themselves
    browser.get(console.url + "/")
    assert wait_until(lambda: number_of(browser, frames) > 0, 30)
    mqtt_broker.stop()
    assert wait_until(lambda: "disconnected" in text_of(browser, "#conn"), 40)
    assert "disconnected" in text_of(browser, "#broker-state")
    shoot(browser, "live-disconnected")
    mqtt_broker.start()
    assert wait_until(lambda: "broker connected" in text_of(browser, "#conn"), 40)
    before = number_of(browser, frames)
    assert wait_until(lambda: number_of(browser, frames) > before, 40), daemon.log[-2000:]
    assert js_errors(browser) == []


class Daemons:
    """Publishes what two daemons (cam1 top-left, cam2 beside it) would: one daemon is one
    camera, so a line of several is played from the test."""

    def __init__(self, broker) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.seq = 0

    def publish(self, camera: str, kind: str, payload: dict) -> None:
        p.schema_valid(kind, payload)
        self.client.publish(TOPIC.format(camera=camera, kind=kind),
                            json.dumps(payload, allow_nan=False), qos=1)

    def events(self, count: int, images: list[str]) -> None:
        for i in range(count):
            self.seq += 1
            camera, offset, side = [("cam1", 0.0, "top"), ("cam2", 1000.0, "top"),
                                    ("cam3", 0.0, "bottom")][i % 3]
            self.publish(camera, "defects", p.event(
                camera, "C1", self.seq, self.seq * 0.4, class_id=1 + self.seq % 3,
                score=0.55 + (self.seq % 9) * 0.05, cd_offset_mm=offset,
                image=images[self.seq % len(images)], side=side))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def console_on_archive(tmp_path, mqtt_broker):
    archive = tmp_path / "archive"
    images = p.make_archive(archive, cameras=())
    port = free_port()
    sections = daemon_sections(tmp_path, mqtt_broker, tmp_path / "model.onnx", tmp_path,
                               console={"listen": f"127.0.0.1:{port}",
                                        "archive_path": str(archive)})
    console = Console(write_config(tmp_path / "edge.toml", sections), port)
    try:
        assert wait_until(lambda: console.state() != {}, 40), console.process.log
        yield console, images
        assert stop(console.process) in (0, -15), console.process.log[-3000:]
        assert "Traceback" not in console.process.log
    finally:
        console.process.stop()


def test_a_line_of_several_cameras_gets_one_map_per_surface(browser, console_on_archive,
                                                            mqtt_broker):
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    console, images = console_on_archive
    daemons = Daemons(mqtt_broker)
    try:
        daemons.events(9, images)
        assert wait_until(lambda: console.received("defects") == 9, 30)
        browser.get(console.url + "/coils/C1")
        sides = ("return [...document.querySelectorAll('canvas.map-canvas')]"
                 ".map(c => c.dataset.side + ':' + c.dataset.points)")
        assert wait_until(lambda: browser.execute_script(sides) == ["bottom:3", "top:6"], 30)
        daemons.events(3, images)  # the maps grow while the page is open
        assert wait_until(lambda: browser.execute_script(sides) == ["bottom:4", "top:8"], 30)
        points = json.load(urllib.request.urlopen(console.url + "/api/coils/C1", timeout=5))
        top = [pt for pt in points if pt["side"] == "top"]
        # cam2 sits 1000 mm across from cam1: its defects lie right of cam1's on the top map
        assert min(pt["cd_mm"][0] for pt in top if pt["camera"] == "cam2") > \
            max(pt["cd_mm"][1] for pt in top if pt["camera"] == "cam1")
        shoot(browser, "coil-three-cameras")
        assert js_errors(browser) == []

        # a paused or faulty camera says so on the live view (its silence is not "no defects")
        paused = {**p.status("cam3"), "inspection": {
            "state": "paused", "since": p.now_iso(), "by": "op1", "reason": "roll change"},
            "model_state": "fault", "model_fault": {"reason": "model output invalid: 3 NaN",
                                                    "since": p.now_iso()}}
        daemons.publish("cam3", "status", paused)
        daemons.publish("cam1", "status", {**p.status("cam1"), "inspection": {"state": "running"}})
        browser.get(console.url + "/")
        field = '#cam-{} dd[data-field="inspection"]'
        assert wait_until(lambda: text_of(browser, field.format("cam3"))
                          .startswith("PAUSED by op1 (roll change)"), 30)
        assert "alert" in browser.find_element(By.CSS_SELECTOR, field.format("cam3")) \
            .get_attribute("class")
        assert text_of(browser, field.format("cam1")) == "running"
        outputs = '#cam-{} dd[data-field="model outputs"]'
        assert text_of(browser, outputs.format("cam3")) == "FAULT: model output invalid: 3 NaN"
        assert text_of(browser, outputs.format("cam1")) == "-"  # an older daemon: not said
        assert js_errors(browser) == []
    finally:
        daemons.close()
