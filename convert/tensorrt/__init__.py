"""TensorRT engine building (needs `tensorrt` and `pycuda`: `pip install steel-inspect[tensorrt]`).

Only API present in both TensorRT 8.6 (the last release for the line's GTX 1060, SM 6.1) and
TensorRT 10 is used: named I/O tensors, build_serialized_network, set_memory_pool_limit.
"""

from __future__ import annotations

from convert.errors import TensorRTUnavailable
from edge.inference.manifest import INSTALL_HINT


def require_tensorrt():
    """(tensorrt, pycuda.driver), or TensorRTUnavailable naming the extra to install."""
    try:
        import tensorrt  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt is not importable ({exc}); {INSTALL_HINT}") from None
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable(f"pycuda is not importable ({exc}); {INSTALL_HINT}") from None
    return tensorrt, cuda
