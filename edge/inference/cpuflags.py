"""What this CPU can do fast, from its flags (Linux /proc/cpuinfo), for engines that suit it.

INT8 on x86: without VNNI (AVX2 only) the uint8 x int8 products of ONNX Runtime's kernels can
saturate, so weights are quantised to 7 bits (`reduce_range`). With VNNI (AVX-512 VNNI or AVX-VNNI)
7 bits bought no speed and doubled ResNet50's INT8 error (measured, docs/convert.md), so full
8-bit weights are used.
"""

from __future__ import annotations

import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The first processor's flags; empty when unreadable (not Linux, or an odd kernel)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def int8_reduce_range(flags: set[str]) -> tuple[bool, str]:
    """(reduce_range, why) for ONNX Runtime INT8 weights on a CPU with `flags`."""
    vnni = sorted(f for f in VNNI_FLAGS if f in flags)
    if vnni:
        return False, f"8-bit weights: this CPU has {', '.join(vnni)} (no saturation)"
    if "avx2" in flags or "avx512f" in flags:
        return True, "7-bit weights (reduce_range): this CPU has no VNNI, 8-bit products saturate"
    return True, "7-bit weights (reduce_range): CPU flags unknown, the safe choice"


def int8_unsuited(manifest: dict | None, flags: set[str]) -> str | None:
    """Why an ONNX Runtime INT8 engine with 8-bit weights may saturate on this CPU (None: fine)."""
    calibration = (manifest or {}).get("calibration") or {}
    if manifest is None or manifest.get("backend") != "onnxruntime":
        return None
    if calibration.get("reduce_range") is not False or int8_reduce_range(flags)[0] is False:
        return None
    return ("INT8 engine with 8-bit weights (built on a CPU with VNNI) on a CPU without VNNI: "
            "products may saturate and scores drift; rebuild it on this machine")


def physical_cores(cpuinfo: Path = CPUINFO) -> int:
    """Physical cores (distinct physical id + core id); the logical CPU count if unknown."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    cores, package = set(), "0"
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "physical id":
            package = value
        elif key == "core id":
            cores.add((package, value))
    return len(cores) or os.cpu_count() or 1


def inference_threads(configured: int, cpuinfo: Path = CPUINFO) -> int:
    """model.threads: as configured, or (0) physical cores minus one, leaving one core to the
    camera, tiling and publishing threads (ONNX Runtime's own default, all cores, cost the
    daemon 31% throughput on 2 cores)."""
    return configured if configured > 0 else max(1, physical_cores(cpuinfo) - 1)
