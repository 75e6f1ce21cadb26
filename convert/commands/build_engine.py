"""`convert build-engine --run RUN_DIR --out PATH`: build an engine and gate it on test F1."""

from __future__ import annotations

from pathlib import Path

from edge.argtypes import f1_drop, positive_int


def add_arguments(parser) -> None:
    from convert.build import DEFAULT_CALIB_IMAGES  # noqa: PLC0415

    parser.add_argument("--run", required=True, type=Path,
                        help="run folder with modelcard.json and model.onnx")
    parser.add_argument("--out", required=True, type=Path, help="engine file to write")
    parser.add_argument("--precision", choices=("fp16", "fp32", "int8"), default=None,
                        help="requested precision (default: fp16 for tensorrt, fp32 for "
                             "onnxruntime, where FP16 runs slower than FP32 on a CPU; see "
                             "docs/convert.md)")
    parser.add_argument("--backend", choices=("tensorrt", "onnxruntime"), default="tensorrt",
                        help="tensorrt (GPU line PCs, default) or onnxruntime (CPU)")
    parser.add_argument("--max-batch", type=positive_int, default=8,
                        help="largest batch the engine takes (default 8; 7 tiles per frame)")
    parser.add_argument("--calib-images", type=positive_int, default=DEFAULT_CALIB_IMAGES,
                        help="INT8: training-split images whose tiles calibrate (default "
                             f"{DEFAULT_CALIB_IMAGES})")
    parser.add_argument("--max-f1-drop", type=f1_drop, default=0.01,
                        help="largest allowed absolute F1 drop per class (default 0.01)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder, if it moved since training (default: the card's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    parser.add_argument("--workspace", type=positive_int, default=1024, metavar="MIB",
                        help="TensorRT builder workspace limit in MiB (default 1024)")
    parser.add_argument("--no-onnx-row", dest="onnx_row", action="store_false",
                        help="skip the FP32 ONNX row of the gate table (CPU time on big models); "
                             "the gate then decides on the absolute drop, not paired")
    parser.add_argument("--timing-cache", type=Path, default=None,
                        help="TensorRT timing cache file (default: .tensorrt-timing.cache "
                             "beside --out)")


def default_precision(backend: str) -> str:
    """FP16 only where it is fast (GPUs); ONNX Runtime FP16 ran at 0.6-0.8x FP32 on the CPU."""
    return "fp16" if backend == "tensorrt" else "fp32"


def run(args) -> int:
    from convert.build import BuildOptions, build_and_gate, raise_if_failed  # noqa: PLC0415

    precision = args.precision or default_precision(args.backend)
    options = BuildOptions(
        run=args.run, out=args.out, precision=precision, backend=args.backend,
        max_batch=args.max_batch, calib_images=args.calib_images, max_f1_drop=args.max_f1_drop,
        data=args.data, threads=args.threads, workspace_mib=args.workspace,
        timing_cache=args.timing_cache, onnx_row=args.onnx_row,
        verbose=args.verbose,
    )
    outcome = build_and_gate(options)
    manifest = outcome.manifest
    print(outcome.report.format_table())
    for note in manifest["precision_notes"]:
        print(f"note: {note}")
    print(f"{manifest['backend']} {manifest['backend_version']}: precision requested "
          f"{manifest['requested_precision']}, effective {manifest['effective_precision']}")
    raise_if_failed(outcome)
    print(f"wrote {outcome.path} and {outcome.path.name}.json")
    return 0
