"""Console defect gallery on a large archive: first byte and full load, 100 vs 10,000 entries.

    .venv/bin/python benchmarks/bench_console_gallery.py [--entries 10000] [--repeat 20]

Builds an archive of N small JPEG defect images (128x128) and a console state holding one event
per image (the console's default max_events is 10,000), serves it with uvicorn on a free
loopback port (as `edge console` does) and times, side by side in one run, a small archive (100)
and the large one:
- first byte and whole HTML of gallery pages (first page, a filtered one, the last page) over
  one keep-alive HTTP connection, median of --repeat;
- full load: the page and all of its images (6 connections, as a browser), median of --repeat;
- with Chromium (if present): navigation responseStart and loadEventEnd of /defects.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.console.app import build_app  # noqa: E402
from edge.console.archive import Archive  # noqa: E402
from edge.console.state import ConsoleState  # noqa: E402
from tests import console_payloads as payloads  # noqa: E402
from tests.fixtures.broker import free_port, wait_until  # noqa: E402


def build(root: Path, entries: int) -> ConsoleState:
    rng = np.random.default_rng(0)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (128, 128), dtype=np.uint8))
    state = ConsoleState(max_events=max(entries, 10), max_coils=10)
    for i in range(entries):
        rel = f"defects/C{i // 1000}/{i:05d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(jpeg.tobytes())
        state.add_event(payloads.event("cam1" if i % 2 else "cam2", f"C{i // 1000}", i + 1,
                                       i * 0.1, class_id=1 + i % 3, score=0.5 + (i % 50) / 100,
                                       image=rel), None)
    return state


def serve(state: ConsoleState, root: Path) -> tuple[uvicorn.Server, int]:
    port = free_port()
    app = build_app(state, Archive(root), "L1", page_size=60)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    assert wait_until(lambda: server.started, 10)
    return server, port


def get(conn: http.client.HTTPConnection, url: str) -> tuple[float, float, bytes]:
    start = time.perf_counter()
    conn.request("GET", url)
    response = conn.getresponse()
    first = response.read(1)
    first_byte = time.perf_counter() - start
    body = first + response.read()
    assert response.status == 200, (url, response.status)
    return first_byte, time.perf_counter() - start, body


def images_of(html: bytes) -> list[str]:
    return [part.split(b'"', 1)[0].decode() for part in html.split(b'src="/archive/')[1:]]


def full_load(port: int, url: str) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    _, _, html = get(conn, url)
    images = images_of(html)
    local = threading.local()

    def fetch(rel: str) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port)
        get(local.conn, "/archive/" + rel)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(fetch, images))
    return time.perf_counter() - start


def browser_timing(port: int) -> tuple[float, float] | None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return None
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        samples = []
        for _ in range(5):
            driver.get(f"http://127.0.0.1:{port}/defects?nocache={time.time_ns()}")
            timing = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.responseStart - t.requestStart, t.loadEventEnd - t.startTime];")
            samples.append(timing)
        return tuple(statistics.median(s[i] for s in samples) for i in range(2))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    urls = {"first page": "/defects", "filtered": "/defects?class=scratches&min_score=0.8",
            "last page": "/defects?page=1000000"}
    print("| entries | page | first byte ms | HTML ms | HTML kB | full load ms (60 images) |")
    print("|---|---|---|---|---|---|")
    browser = {}
    for entries in (100, args.entries):
        with tempfile.TemporaryDirectory() as folder:
            state = build(Path(folder), entries)
            server, port = serve(state, Path(folder))
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for name, url in urls.items():
                runs = [get(conn, url) for _ in range(args.repeat)]
                loads = [full_load(port, url) for _ in range(max(3, args.repeat // 4))]
                print(f"| {entries} | {name} | {statistics.median(r[0] for r in runs) * 1e3:.1f} "
                      f"| {statistics.median(r[1] for r in runs) * 1e3:.1f} "
                      f"| {len(runs[0][2]) / 1e3:.0f} | {statistics.median(loads) * 1e3:.0f} |")
            browser[entries] = browser_timing(port)
            server.should_exit = True
            time.sleep(0.5)
    for entries, timing in browser.items():
        if timing:
            print(f"Chromium /defects with {entries} entries: first byte {timing[0]:.0f} ms, "
                  f"load event {timing[1]:.0f} ms")


if __name__ == "__main__":
    main()
