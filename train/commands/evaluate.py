"""`train evaluate`: re-run the evaluation of RUN_DIR/model.keras on one split."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `train fit`")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"),
                        help="split to evaluate (default test)")
    parser.add_argument("--data", default=None,
                        help="data folder if it moved (its content must be unchanged)")
    parser.add_argument("--out", default=None,
                        help="JSON file for the metrics (default RUN_DIR/evaluation/SPLIT.json)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0: all)")


def run(args) -> int:
    from train.assess import evaluate_run  # noqa: PLC0415
    from train.fit import configure_tensorflow  # noqa: PLC0415

    configure_tensorflow(args.threads)
    result = evaluate_run(args.run, args.split, data_dir=args.data, out=args.out)
    print(result.summary)
    print(f"written to {result.path}")
    return 0
