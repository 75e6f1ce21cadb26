"""`edge run --config FILE`: the daemon. Logs go to stdout (journald adds the timestamps).

SIGTERM or SIGINT stop it in order (see edge.daemon); it exits 0 after a clean stop. SIGHUP
(`systemctl reload`) reloads `model.path` in the background and swaps it in between two frames
(edge.inference.reload); a model that fails to load leaves the running one in place.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from edge.clirunner import CurrentStreamHandler, install_log_handler
from edge.config import DEFAULT_CONFIG_PATH
from edge.observe.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

_TICK_S = 0.5


def add_arguments(parser) -> None:
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG_PATH), metavar="FILE",
        help=f"configuration file (default {DEFAULT_CONFIG_PATH})",
    )


def run(args) -> int:
    from edge.config import load_config  # noqa: PLC0415
    from edge.daemon import Daemon  # noqa: PLC0415

    config = load_config(args.config)
    log_to_stdout("DEBUG" if args.verbose else config.logging.level)
    stop = install_stop_handlers()
    reload = install_reload_handler()
    daemon = Daemon(config)
    run_daemon(daemon, stop, reload=reload)
    return 0


def run_daemon(daemon, stop: threading.Event, until=None, tick: float = _TICK_S,
               reload: threading.Event | None = None) -> None:
    """Start, tick until `stop` is set (or `until()` is true), shut down; also on errors.
    A set `reload` event (SIGHUP) starts a background model reload. A tick that raises is
    logged (at most every 10 s) and the loop goes on: the pipeline's threads keep inspecting."""
    failures = RateLimitedLog(log)
    try:
        daemon.start()
        while not stop.wait(tick):
            try:
                if reload is not None and reload.is_set():
                    reload.clear()
                    daemon.reload()
                daemon.tick()
            except Exception:  # a side feature's bug must not stop inspection
                failures.error("tick", "the daemon's tick failed; inspection goes on",
                               exc_info=True)
            if until is not None and until():
                break
    finally:
        daemon.shutdown()


def install_stop_handlers() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def install_reload_handler() -> threading.Event:
    """SIGHUP sets the returned event (the main loop reloads the model)."""
    reload = threading.Event()

    def on_hangup(signum, frame):
        log.info("received SIGHUP: reloading the model")
        reload.set()

    signal.signal(signal.SIGHUP, on_hangup)
    return reload


def log_to_stdout(level: str) -> None:
    # under systemd ($JOURNAL_STREAM set) journald adds timestamps; elsewhere add our own
    fmt = "%(levelname)s %(threadName)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    handler = CurrentStreamHandler("stdout")
    handler.setFormatter(logging.Formatter(fmt))
    install_log_handler(handler, level)
    logging.getLogger("paho").setLevel(logging.WARNING)
