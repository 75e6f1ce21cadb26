"""steel-inspect convert: ONNX export and engine building, judged by the `edge` runtimes."""
