"""`edge monitor --config FILE`: a live summary of one camera's MQTT topics."""

from __future__ import annotations

import time
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the daemon's edge.toml")
    parser.add_argument("--seconds", type=float, default=0, help="stop after S seconds (0: never)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between lines")
    parser.add_argument("--until-stopped", action="store_true",
                        help="exit once the daemon publishes its 'stopped' status")
    parser.add_argument("--events-log", type=Path, help="append every event to this JSONL file")
    parser.add_argument("--coils-log", type=Path,
                        help="append every coil report to this JSONL file")


def run(args) -> int:
    from edge.config import load_config  # noqa: PLC0415
    from edge.observe.monitor import Monitor  # noqa: PLC0415

    monitor = Monitor(load_config(args.config), events_log=args.events_log,
                      coils_log=args.coils_log)
    monitor.start()
    started = time.monotonic()
    try:
        while not (args.seconds and time.monotonic() - started >= args.seconds):
            if args.until_stopped and monitor.stopped.wait(args.interval):
                break
            if not args.until_stopped:
                time.sleep(args.interval)
            print(monitor.summary_line(), flush=True)
    finally:
        print(monitor.summary_line(), flush=True)
        monitor.close()
    return 0
