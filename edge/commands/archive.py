"""`edge archive export --config FILE --coil ID|--since DATE --out DIR`: archived whole frames as
a Severstal-format folder (train_images/ + train.csv with the daemon's decisions as RLE boxes).

Whole frames are archived only with `archive.whole_frame = true`; a coil (or period) without any
is an error naming it. `--archive DIR` reads another archive root than the config's.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="archived frames -> Severstal-format folder",
                            description="write archived whole frames as train_images/ + "
                            "train.csv (the daemon's decisions as RLE boxes)")
    export.add_argument("--config", type=Path, help="the daemon's edge.toml (its archive root)")
    export.add_argument("--archive", type=Path, metavar="DIR",
                        help="archive root (default: the config's archive.path, or `archive` "
                        "beside outbox.path)")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--coil", metavar="ID", help="the frames of this coil id")
    which.add_argument("--since", metavar="DATE",
                       help="the frames acquired since this ISO date or date-time (UTC)")
    export.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="new folder for train_images/ and train.csv")


def run(args) -> int:
    from edge.archive import export  # noqa: PLC0415
    from edge.errors import DataError  # noqa: PLC0415

    root = _archive_root(args)
    since = export.parse_since(args.since) if args.since else None
    folders = export.coil_folders(root, args.coil)
    what = f"coil {args.coil}" if args.coil is not None else f"since {args.since}"
    if args.coil is not None and not folders:
        raise DataError(f"archive {root}: no folder of coil {args.coil}")
    skipped: list[str] = []
    frames = export.archived_frames(folders, since, skipped, args.coil)
    for reason in skipped:
        log.warning("left out: %s", reason)
    if not frames:
        raise DataError(f"archive {root}: no whole frames of {what} (they are kept only with "
                        "archive.whole_frame = true; crops alone cannot be exported)")
    summary = export.write_folder(frames, args.out)
    for reason in summary.skipped:
        log.warning("left out: %s", reason)
    boxes = ", ".join(f"class {c}: {n}" for c, n in sorted(summary.boxes_by_class.items()))
    print(f"exported {summary.frames} frames of {what} from {len(folders)} coil folder(s) to "
          f"{args.out} ({summary.rows} CSV rows; boxes {boxes or 'none'}; "
          f"{len(skipped) + len(summary.skipped)} left out)")
    return 0


def _archive_root(args) -> Path:
    from edge.errors import ConfigError  # noqa: PLC0415

    if args.archive is not None:
        return args.archive
    if args.config is None:
        raise ConfigError("give --config (the daemon's edge.toml) or --archive DIR")
    from edge.config import load_config  # noqa: PLC0415

    return load_config(args.config).archive_root
