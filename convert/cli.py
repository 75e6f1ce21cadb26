"""`convert`: export a trained model to ONNX and build a gated inference engine."""

from edge.clirunner import run_main

COMMANDS = {
    "export-onnx": ("convert.commands.export_onnx", "export RUN_DIR/model.keras to ONNX"),
    "build-engine": ("convert.commands.build_engine", "build an engine and gate it on test F1"),
    "package": ("convert.commands.package", "write a model package (.sipkg) for the line PCs"),
}


def main(argv=None) -> int:
    return run_main("convert", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
