"""`edge replay --config FILE --images DIR`: process a folder once, wait for every broker ack.

The configured camera is replaced by a replay source over DIR (at the configured replay rate, or
as fast as possible), no frame is dropped, and the command exits when every event has been
acknowledged by the broker, printing frames, defects per class and fps. Exit 0 when all events
were acknowledged, 1 when --timeout ran out first (they stay in the outbox).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    from edge.commands.run import add_arguments as add_config  # noqa: PLC0415

    add_config(parser)
    parser.add_argument("--images", required=True, type=Path, metavar="DIR",
                        help="folder of images to process once")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="seconds to wait for the broker's acks after the last frame "
                        "(default 300)")


def run(args) -> int:
    from edge.commands.run import (  # noqa: PLC0415
        install_reload_handler,
        install_stop_handlers,
        log_to_stdout,
        run_daemon,
    )
    from edge.config import ReplayCameraConfig, load_config  # noqa: PLC0415
    from edge.daemon import Daemon  # noqa: PLC0415
    from edge.errors import ConfigError  # noqa: PLC0415

    config = load_config(args.config)
    if not args.images.is_dir():
        raise ConfigError(f"--images: {args.images}: folder not found")
    rate = config.camera.rate if isinstance(config.camera, ReplayCameraConfig) else 0
    # the configured frame size (replay's width/height, or a GenICam sensor ROI) is what the
    # line's frames are; without it the first image decides
    camera = ReplayCameraConfig(type="replay", path=args.images.resolve(), rate=rate, loop=False,
                                width=config.camera.width, height=config.camera.height)
    config = config.model_copy(update={"camera": camera})
    log_to_stdout("DEBUG" if args.verbose else config.logging.level)
    stop = install_stop_handlers()
    daemon = Daemon(config, lossless=True)
    clock = _ReplayClock(daemon, args.timeout)
    run_daemon(daemon, stop, until=clock.done, tick=0.1, reload=install_reload_handler())
    print_summary(daemon, clock, file=sys.stdout)
    return 0 if daemon.outbox.depth == 0 and clock.frames_done_at and _sizes_ok(daemon) else 1


def _sizes_ok(daemon) -> bool:
    """False when more images were skipped for their size than processed: the expected size
    (the first image's, without camera.width/height) is probably wrong."""
    skipped = daemon.source.counters.get("skipped_size", 0) if daemon.source else 0
    if skipped > daemon.stats.frames_processed:
        log.error("%d images skipped for their size, %d processed: set camera.width and "
                  "camera.height to the line's frame size", skipped, daemon.stats.frames_processed)
        return False
    return True


class _ReplayClock:
    """Decides when the replay is over: all frames processed, then all acks (or the timeout)."""

    def __init__(self, daemon, ack_timeout: float) -> None:
        self.daemon = daemon
        self.ack_timeout = ack_timeout
        self.frames_done_at: float | None = None

    def done(self) -> bool:
        daemon = self.daemon
        if self.frames_done_at is None:
            if not daemon.pipeline.finished:
                return False
            self.frames_done_at = time.monotonic()
            log.info("all frames processed; waiting for the broker to acknowledge %d events",
                     daemon.outbox.depth + daemon.publisher.queued)
        if daemon.all_acknowledged:
            return True
        if time.monotonic() - self.frames_done_at > self.ack_timeout:
            log.error("%d events still unacknowledged after %.0f s (broker %s)",
                      daemon.outbox.depth, self.ack_timeout, daemon.mqtt.state)
            return True
        return False


def print_summary(daemon, clock: _ReplayClock, file) -> None:
    stats, source = daemon.stats, daemon.source
    counters = source.counters if source is not None else {}
    fps = stats.processing_fps()
    publisher = daemon.publisher
    acked = publisher.acked - publisher.reports_acked if publisher else 0
    objects = "tiles" if daemon.config.mqtt.event_schema == "v1" else "defects"
    lines = [
        f"frames:     {stats.frames_processed} processed, {stats.frames_failed} failed, "
        f"{sum(v for k, v in counters.items() if k.startswith('skipped_'))} files skipped",
        f"events:     {stats.events} ({acked} acknowledged, "
        f"{daemon.outbox.depth if daemon.outbox else 0} left in the outbox)",
        f"coils:      {publisher.reports_acked if publisher else 0} reports acknowledged",
        f"fps:        {fps:.1f}",
        f"defects:    class          frames  {objects}",
    ]
    names = daemon.model.card.class_names if daemon.model is not None else []
    for name in names:
        lines.append(
            f"            {name:<14} {stats.frames_by_class[name]:>6}  "
            f"{stats.defects_by_class[name]:>5}"
        )
    print("\n".join(lines), file=file)
