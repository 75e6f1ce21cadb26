"""`train check-data`: validate every image and CSV row of a Severstal-format folder."""

from __future__ import annotations

import logging

from edge.errors import DataError

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="folder with train_images/ and train.csv")
    parser.add_argument(
        "--class-map",
        default=None,
        help="Severstal id:project id pairs, e.g. 1:1,2:0,3:2,4:3 (0 drops; default identity)",
    )


def format_summary(summary: dict, root) -> str:
    """The summary table of a folder (SeverstalFolder.summary())."""
    width, height = summary["size"]
    lines = [
        f"data: {root} ({width}x{height}, class map {summary['class_map']})",
        f"{'images':<26}{summary['images']:>10}",
        f"{'defect-free images':<26}{summary['defect_free']:>10}",
        f"{'class':<26}{'images':>10}{'mask pixels':>14}",
    ]
    for c in summary["classes"]:
        label = f"{c['id']} {c['name']}"
        lines.append(f"{label:<26}{c['images']:>10}{c['mask_pixels']:>14,}")
    return "\n".join(lines)


def run(args) -> int:
    from train.data.classmap import ClassMap
    from train.data.folder import SeverstalFolder
    from train.data.problems import Problems
    from train.data.trainable import check_trainable, dropped_lines

    class_map = ClassMap.parse(args.class_map) if args.class_map else None
    problems = Problems(strict=False)
    log.info("checking %s (decoding every image)", args.data)
    folder = SeverstalFolder.open(args.data, class_map, check_images=True, problems=problems)
    check_trainable(folder, problems)
    summary = folder.summary()
    print(format_summary(summary, folder.root))
    for line in dropped_lines(summary):
        print(line)
    for c in summary["classes"]:
        if c["images"] == 0:
            print(f"warning: class {c['id']} ({c['name']}) has no images")
    if problems:
        for message in problems.messages:
            print(f"problem: {message}")
        raise DataError(f"{len(problems)} problems in {folder.root}; fix them before training")
    print("ok: the folder is usable")
    return 0
