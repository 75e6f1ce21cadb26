"""INT8 weights that suit the CPU: reduce_range from the CPU's flags (edge.inference.cpuflags)."""

from __future__ import annotations

from edge.inference.cpuflags import (
    cpu_flags,
    inference_threads,
    int8_reduce_range,
    int8_unsuited,
    physical_cores,
)

AVX2 = "fpu sse4_2 avx avx2 fma"
VNNI = AVX2 + " avx512f avx512_vnni"


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


def test_flags_are_read_from_cpuinfo(tmp_path):
    assert cpu_flags(cpuinfo(tmp_path, VNNI)) == set(VNNI.split())
    assert cpu_flags(tmp_path / "missing") == set()


def test_vnni_gets_8_bit_weights_and_avx2_7_bit(tmp_path):
    full, why = int8_reduce_range(cpu_flags(cpuinfo(tmp_path, VNNI)))
    assert full is False and "avx512_vnni" in why
    reduced, why = int8_reduce_range(cpu_flags(cpuinfo(tmp_path, AVX2)))
    assert reduced is True and "no VNNI" in why
    assert int8_reduce_range(set())[0] is True


def test_an_8_bit_engine_on_a_cpu_without_vnni_is_warned():
    manifest = {"backend": "onnxruntime", "calibration": {"reduce_range": False}}
    assert "rebuild it on this machine" in int8_unsuited(manifest, set(AVX2.split()))
    assert int8_unsuited(manifest, set(VNNI.split())) is None
    assert int8_unsuited({**manifest, "calibration": {"reduce_range": True}},
                         set(AVX2.split())) is None
    assert int8_unsuited({"backend": "onnxruntime", "calibration": None}, set()) is None
    assert int8_unsuited(None, set()) is None


def test_inference_threads_default_to_physical_cores_minus_one(tmp_path):
    # 2 packages x 2 cores x 2 hyper-threads = 8 logical CPUs, 4 physical cores
    blocks = [f"processor\t: {i}\nphysical id\t: {i // 4}\ncore id\t\t: {(i // 2) % 2}\n"
              for i in range(8)]
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks))
    assert physical_cores(path) == 4
    assert inference_threads(0, path) == 3
    assert inference_threads(5, path) == 5  # as configured
    single = tmp_path / "single"
    single.write_text("processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n")
    assert inference_threads(0, single) == 1  # never 0
