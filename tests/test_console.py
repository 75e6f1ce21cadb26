"""The console: config section, archive guard and HTTP routes (Starlette test client)."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from edge.config import parse_config
from edge.console.app import build_app
from edge.console.archive import Archive
from edge.console.state import ConsoleState
from edge.errors import ConfigError
from tests import console_payloads as p

BASE = {"site": {"line": "L1", "camera": "cam1"},
        "camera": {"type": "replay", "path": "frames"}, "model": {"path": "m.onnx"},
        "mqtt": {"host": "127.0.0.1"}, "outbox": {"path": "o.sqlite"}}


def config_with(console: dict, tmp_path=None):
    return parse_config(BASE | {"console": console}, base_dir=tmp_path)


def test_console_section_defaults_to_loopback_without_token():
    console = config_with({}).console
    assert (console.host, console.port, console.read_token()) == ("127.0.0.1", 8080, None)


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "10.1.2.3:80", "[::]:8080"])
def test_a_non_loopback_listen_without_a_token_is_refused(listen):
    with pytest.raises(ConfigError, match=r"^config: console: .*not a loopback address"):
        config_with({"listen": listen})


@pytest.mark.parametrize("listen", ["8080", "host:", ":80", "h:70000"])
def test_a_bad_listen_names_the_key(listen):
    with pytest.raises(ConfigError, match=r"^config: console.listen: must be HOST:PORT"):
        config_with({"listen": listen})


def test_token_file_is_read_and_must_be_long_enough(tmp_path):
    (tmp_path / "token").write_text("short\n")
    console = config_with({"listen": "0.0.0.0:8080", "token_file": "token"}, tmp_path).console
    with pytest.raises(ConfigError, match="at least 16 characters"):
        console.read_token()
    (tmp_path / "token").write_text("x" * 32 + "\n")
    assert console.read_token() == "x" * 32


@pytest.mark.parametrize("relative", [
    "../secret.jpg", "defects/../../secret.jpg", "/etc/passwd", "defects/C1/0000.txt",
    "link/secret.jpg", "defects\\..\\..\\secret.jpg", "nothing/here.jpg", "a\0.jpg",
])
def test_the_archive_refuses_paths_outside_its_root_or_of_other_types(tmp_path, relative):
    root = tmp_path / "archive"
    p.make_archive(root, defects=1, cameras=())
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root / "link").symlink_to(tmp_path)
    (root / "defects/C1/0000.txt").write_text("x")
    assert Archive(root).resolve(relative) is None
    assert Archive(root).resolve("defects/C1/0000.jpg") == root / "defects/C1/0000.jpg"


@pytest.fixture
def filled(tmp_path):
    root = tmp_path / "archive"
    images = p.make_archive(root)
    state = ConsoleState(max_events=100, max_coils=10)
    events = [p.event("cam1" if i % 2 else "cam2", "C1", i + 1, i * 0.5,
                      class_id=1 + i % 3, score=0.5 + i * 0.05, image=images[i])
              for i in range(8)]
    for event in events:
        p.schema_valid("defects", event)
        state.add_event(event, 5.0)
    report = p.coil_report("cam1", "C0", map_png="maps/C0-cam1.png")
    p.schema_valid("coils", report)
    state.add_coil_report(report)
    state.set_stats("cam1", p.stats("cam1", 10))
    return state, events, root


def client_of(state, root, token=None):
    return TestClient(build_app(state, Archive(root), "L1", page_size=3, token=token))


def test_every_page_renders_and_unknown_ids_get_a_404_page(filled):
    state, events, root = filled
    client = client_of(state, root)
    for url in ["/", "/coils", "/coils/C0", "/coils/C1", "/defects", "/commissioning",
                f"/defects/{events[0]['event_id']}/1"]:
        assert client.get(url).status_code == 200, url
    missing_event = "/defects/" + "f" * 32 + "/1"
    missing_defect = f"/defects/{events[0]['event_id']}/9"
    assert client.get("/favicon.ico").status_code == 204  # not a 404 in the browser's log
    current = client.get("/coils").text  # cam1's stats say coil C1
    assert '<a class="coil-link" href="/coils/C1">C1</a>' in current
    for url in ["/coils/NOPE", missing_event, missing_defect]:
        response = client.get(url)
        assert response.status_code == 404 and "not found" in response.text, url
        assert "<!doctype html>" in response.text


def test_image_urls_with_traversal_are_refused(filled, tmp_path):
    state, _, root = filled
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    client = client_of(state, root)
    assert client.get("/archive/defects/C1/0000.jpg").headers["content-type"] == "image/jpeg"
    for url in ["/archive/..%2fsecret.jpg", "/archive/%2e%2e/secret.jpg",
                "/archive/defects/%2e%2e/%2e%2e/%2e%2e/secret.jpg", "/archive//etc/passwd",
                "/latest/..%2f..%2fsecret.jpg"]:
        response = client.get(url)
        assert response.status_code == 404 and b"secret" not in response.content, url


class MovingArchive(Archive):
    """An archive whose coil folder is moved (as for a coil named late) right after a file in it
    is resolved; `link` leaves the old name as a link, as the writer does once it is done."""

    def __init__(self, root, link: bool) -> None:
        super().__init__(root)
        self.link, self.moved = link, False

    def resolve(self, relative):
        path = super().resolve(relative)
        if path is not None and not self.moved:
            self.moved = True
            path.parent.rename(path.parent.with_name("C1-named"))
            if self.link:
                path.parent.symlink_to("C1-named")
        return path


@pytest.mark.parametrize("link", [True, False])
def test_an_archive_file_moved_while_served_is_sent_or_a_404(filled, link):
    state, _, root = filled
    client = TestClient(build_app(state, MovingArchive(root, link), "L1", page_size=3))
    response = client.get("/archive/defects/C1/0000.jpg")
    if link:
        assert response.status_code == 200
        assert response.content == (root / "defects/C1-named/0000.jpg").read_bytes()
    else:
        assert response.status_code == 404


def test_the_gallery_filters_and_pages(filled):
    state, events, root = filled
    client = client_of(state, root)
    everything = client.get("/defects").text
    assert "8 defects · page 1 of 3" in everything
    assert "1 defects · page 1 of 1" in client.get("/defects?class=scratches&min_score=0.8").text
    assert "0 defects" in client.get("/defects?coil=C9").text
    assert "page 3 of 3" in client.get("/defects?page=99").text  # clamped, not an error
    assert "8 defects" in client.get("/defects?min_score=abc&page=x").text


def test_coil_map_points_and_live_state(filled):
    state, events, root = filled
    client = client_of(state, root)
    points = client.get("/api/coils/C1").json()
    assert len(points) == 8 and {pt["camera"] for pt in points} == {"cam1", "cam2"}
    assert client.get("/api/coils/NOPE").status_code == 404
    snap = client.get("/api/state").json()
    assert snap["cameras"]["cam1"]["stats"]["frames_processed"] == 10
    meta = client.get("/api/latest/cam1").json()
    assert meta["schema"] == "steel-inspect/latest-frame/v1" and len(meta["tiles"]) == 4


def test_memory_is_bounded_and_redeliveries_are_ignored():
    state = ConsoleState(max_events=10, max_coils=2)
    events = [p.event("cam1", "C1", i + 1, i) for i in range(25)]
    for event in events + events[-3:]:
        state.add_event(event, None)
    for i in range(5):
        state.add_coil_report(p.coil_report("cam1", f"C{i}"))
    assert len(state.events) == 10 and state.dropped_events == 15
    assert [r["coil_id"] for r in state.coil_reports()] == ["C4", "C3"]


def test_a_token_is_required_when_configured(filled):
    state, _, root = filled
    client = client_of(state, root, token="t" * 20)
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer " + "t" * 20}).status_code == 200
    first = client.get("/defects?token=" + "t" * 20, follow_redirects=False)
    assert first.status_code == 303 and "token" not in first.headers["location"]
    assert client.get("/defects").status_code == 200  # the cookie the redirect set
    assert "t" * 20 not in json.dumps(dict(first.headers)).replace(
        first.headers.get("set-cookie", ""), "")


def write_config(tmp_path, console: str):
    path = tmp_path / "edge.toml"
    path.write_text("""
[site]
line = "L1"
camera = "cam1"
[camera]
type = "replay"
path = "frames"
[model]
path = "m.onnx"
[mqtt]
host = "127.0.0.1"
[outbox]
path = "o.sqlite"
[console]
""" + console)
    return path


@pytest.mark.parametrize(("console", "message"), [
    ('listen = "0.0.0.0:8080"', "console: listen = '0.0.0.0:8080' is not a loopback address"),
    ('listen = "0.0.0.0:8080"\ntoken_credential = "console-token"',
     "console.token_credential = 'console-token': $CREDENTIALS_DIRECTORY is not set"),
])
def test_edge_console_refuses_to_start_with_one_line_and_exit_2(tmp_path, capsys, monkeypatch,
                                                                 console, message):
    from edge.cli import main  # noqa: PLC0415

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert main(["console", "--config", str(write_config(tmp_path, console))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_the_listener_takes_every_camera_of_its_line_and_skips_bad_messages(mqtt_broker):
    import paho.mqtt.client as paho  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from edge.console.listener import ConsoleListener  # noqa: PLC0415
    from tests.fixtures.broker import wait_until  # noqa: PLC0415

    config = parse_config(BASE | {"mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port}})
    state = ConsoleState(max_events=100, max_coils=10)
    listener = ConsoleListener(config, state)
    listener.start()
    publisher = paho.Client(CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    try:
        assert wait_until(lambda: state.broker == "connected", 10)
        sends = [("steel-inspect/L1/cam1/defects", b"not json"),
                 ("steel-inspect/L1/cam1/defects", b'{"event_id": "x"}'),
                 ("steel-inspect/L1/cam2/coils", b"[1, 2]"),
                 ("steel-inspect/L2/cam9/defects", json.dumps(p.event("cam9", "C1", 1, 0.0))),
                 ("steel-inspect/L1/cam1/defects", json.dumps(p.event("cam1", "C1", 1, 0.0))),
                 ("steel-inspect/L1/cam2/defects", json.dumps(p.event("cam2", "C1", 1, 0.0))),
                 ("steel-inspect/L1/cam2/stats", json.dumps(p.stats("cam2", 10)))]
        for topic, payload in sends:
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: "cam2" in state.stats, 10)
        assert {e["camera"] for e in state.recent_events(10)} == {"cam1", "cam2"}  # not L2's
        assert listener.malformed == 3
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        listener.stop()


def test_payload_text_is_escaped_in_pages(tmp_path):
    state = ConsoleState(max_events=10, max_coils=10)
    evil = p.event("cam1", "<script>alert(1)</script>", 1, 0.0)
    evil["defects"][0]["class_name"] = "<img src=x onerror=alert(1)>"
    state.add_event(evil, None)
    client = client_of(state, tmp_path)
    for url in ["/defects", f"/defects/{evil['event_id']}/1", "/coils/<script>alert(1)</script>"]:
        page = client.get(url).text
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "&lt;" in page, url


def test_frames_before_tracking_with_no_coil_id_render(tmp_path):
    """A daemon's first frames (before the L2 message) and their report carry coil_id null."""
    state = ConsoleState(max_events=10, max_coils=10)
    state.add_event(p.event("cam1", None, 1, 0.0), None)
    state.add_event(p.event("cam1", "A", 2, 0.0), None)
    report = p.coil_report("cam1", None)
    p.schema_valid("coils", report)
    state.add_coil_report(report)
    assert state.coil_ids() == ["A"]
    client = client_of(state, tmp_path)
    for url in ["/coils", "/defects", "/coils/A"]:
        assert client.get(url).status_code == 200, url
    assert "(no coil id)" in client.get("/coils").text
    assert client.get("/coils/None").status_code == 404


def test_the_latest_frame_is_served_whole_while_the_daemon_replaces_it(tmp_path):
    """The daemon renames a new latest/{camera}.jpg into place every few hundred ms; a response
    must never mix two files' sizes and bytes (browsers saw ERR_CONTENT_LENGTH_MISMATCH)."""
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    latest = tmp_path / "latest"
    latest.mkdir()
    bodies = [b"\xff\xd8" + bytes([i]) * size + b"\xff\xd9"
              for i, size in enumerate((1_000, 50_000))]
    stop = threading.Event()

    def replace_forever():
        i = 0
        while not stop.is_set():
            (latest / "next.tmp").write_bytes(bodies[i % 2])
            os.replace(latest / "next.tmp", latest / "cam1.jpg")
            i += 1

    (latest / "cam1.jpg").write_bytes(bodies[0])
    writer = threading.Thread(target=replace_forever, daemon=True)
    writer.start()
    try:
        client = client_of(ConsoleState(10, 10), tmp_path)
        for _ in range(60):
            response = client.get("/latest/cam1.jpg")
            assert response.status_code == 200 and response.content in bodies
            assert int(response.headers["content-length"]) == len(response.content)
    finally:
        stop.set()
        writer.join(5)


@pytest.mark.parametrize(("console", "message"), [
    ({"basic_user": "qe"}, "Basic auth needs both basic_user and basic_password_file"),
    ({"basic_password_file": "pw"}, "Basic auth needs both basic_user"),
    ({"basic_user": "qe", "basic_password_file": "pw", "basic_password_credential": "pw"},
     "set basic_password_file or basic_password_credential, not both"),
    ({"basic_user": "q:e", "basic_password_file": "pw"}, "console.basic_user: must be 1 to 64"),
    ({"listen": "0.0.0.0:8080", "basic_password_file": "pw"}, "Basic auth needs both"),
])
def test_basic_auth_settings_come_together(tmp_path, console, message):
    with pytest.raises(ConfigError, match=message):
        config_with(console, tmp_path)


def basic_console(tmp_path, password: str = "steel-2026-pass\n", **extra):
    (tmp_path / "pw").write_text(password)
    return config_with({"listen": "0.0.0.0:8080", "basic_user": "qe",
                        "basic_password_file": "pw", **extra}, tmp_path).console


def test_basic_auth_alone_allows_a_plant_address_and_reads_the_password_file(tmp_path):
    console = basic_console(tmp_path)
    assert console.read_basic() == ("qe", "steel-2026-pass") and console.read_token() is None
    with pytest.raises(ConfigError, match=r"^console.basic_password_file: the password .* at "
                                          r"least 8 characters$") as error:
        basic_console(tmp_path, password="short\nsecond line").read_basic()
    assert "short" not in str(error.value)
    (tmp_path / "pw").unlink()
    with pytest.raises(ConfigError, match=r"^console.basic_password_file: cannot read .*pw"):
        console.read_basic()


def basic(user: str, password: str) -> dict:
    import base64  # noqa: PLC0415

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_401_accepted_and_wrong_password(filled):
    state, events, root = filled
    client = TestClient(build_app(state, Archive(root), "L1", page_size=3,
                                  basic=("qe", "steel-2026-pass")))
    refused = client.get("/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="steel-inspect console", ' \
        'charset="UTF-8"'  # the browser's login prompt
    for url in ["/", "/defects", "/api/state", "/archive/defects/C1/0000.jpg",
                "/static/console.js"]:
        assert client.get(url, headers=basic("qe", "steel-2026-pass")).status_code == 200, url
    for headers in [basic("qe", "steel-2026-pasS"), basic("QE", "steel-2026-pass"),
                    basic("qe", ""), {"Authorization": "Basic !!!not-base64"},
                    {"Authorization": "Basic cWU="},  # "qe", no colon
                    {"Authorization": "Bearer steel-2026-pass"}]:
        assert client.get("/", headers=headers).status_code == 401, headers
    page = client.get("/defects", headers=basic("qe", "steel-2026-pass")).text
    assert "steel-2026-pass" not in page


def test_token_and_basic_auth_together_accept_either(filled):
    state, _, root = filled
    client = TestClient(build_app(state, Archive(root), "L1", page_size=3, token="t" * 20,
                                  basic=("qe", "steel-2026-pass")))
    assert client.get("/").headers["www-authenticate"].endswith(", Bearer")
    assert client.get("/", headers={"Authorization": "Bearer " + "t" * 20}).status_code == 200
    assert client.get("/", headers=basic("qe", "steel-2026-pass")).status_code == 200
    assert client.get("/", headers=basic("qe", "t" * 20)).status_code == 401


def test_edge_console_serves_basic_auth_from_its_config(tmp_path, mqtt_broker):
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from tests.fixtures.broker import free_port, wait_until  # noqa: PLC0415
    from tests.fixtures.edge_daemon import DaemonProcess  # noqa: PLC0415

    port = free_port()
    (tmp_path / "pw").write_text("steel-2026-pass\n")
    config = write_config(tmp_path, f'listen = "127.0.0.1:{port}"\nbasic_user = "qe"\n'
                                    'basic_password_file = "pw"\n')
    config.write_text(config.read_text().replace('host = "127.0.0.1"',
                                                 f'host = "127.0.0.1"\nport = {mqtt_broker.port}'))
    console = DaemonProcess(config, command="console")

    def status(headers: dict) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/state", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    try:
        assert wait_until(lambda: status({}) != 0, 30), console.log
        assert status({}) == 401
        assert status(basic("qe", "wrong-password")) == 401
        assert status(basic("qe", "steel-2026-pass")) == 200
    finally:
        console.signal(15)
        console.wait(10)
        console.stop()
    assert "steel-2026-pass" not in console.log
