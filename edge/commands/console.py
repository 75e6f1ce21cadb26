"""`edge console --config FILE`: the inspection console, a read-only web page for the line.

Its own process (own systemd unit): it subscribes to the line's MQTT topics and reads the image
archive; a crash or a slow browser here never touches the daemon.
"""

from __future__ import annotations

import logging

from edge.commands.run import add_arguments  # noqa: F401 - the same --config as `edge run`

log = logging.getLogger(__name__)


def run(args) -> int:
    import uvicorn  # noqa: PLC0415

    from edge.config import load_config  # noqa: PLC0415
    from edge.console.app import build_app  # noqa: PLC0415
    from edge.console.archive import Archive  # noqa: PLC0415
    from edge.console.listener import ConsoleListener  # noqa: PLC0415
    from edge.console.state import ConsoleState  # noqa: PLC0415

    config = load_config(args.config)
    console = config.console
    token, basic = console.read_token(), console.read_basic()
    state = ConsoleState(console.max_events, console.max_coils)
    listener = ConsoleListener(config, state)
    archive_root = console.archive_path or config.archive_root
    app = build_app(state, Archive(archive_root), config.site.line, console.page_size,
                    token, basic)
    listener.start()
    log.info("console of line %s on http://%s/ (MQTT %s, archive %s)", config.site.line,
             console.listen, listener.filter, archive_root)
    try:
        uvicorn.run(app, host=console.host, port=console.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=2)
    finally:
        listener.stop()
    return 0
