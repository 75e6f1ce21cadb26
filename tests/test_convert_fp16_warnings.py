"""The float16 conversion's warnings are one log line, not hundreds above the gate table."""

from __future__ import annotations

import logging
import warnings

from convert.ort_engine import build_fp16, summarise_warnings


def test_warnings_are_summarised_in_one_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in (1e-9, 2e-9, 1e-9):
            warnings.warn(f"the float32 number {value} will be truncated to 1e-07", UserWarning,
                          stacklevel=1)
    line = summarise_warnings(caught)
    assert "\n" not in line
    assert line.startswith("float16 conversion: 3 converter warnings (2 distinct), first: ")
    assert "1e-09 will be truncated" in line


def test_build_fp16_logs_the_converter_warnings_as_one_line(exported_run, tmp_path, caplog,
                                                           monkeypatch):
    from onnxconverter_common import float16

    original = float16.convert_float_to_float16

    def warning_converter(*args, **kwargs):  # as on ResNet152: one warning per clipped tensor
        for n in range(212):
            warnings.warn(f"the float32 number {n}e-9 will be truncated to 1e-07", UserWarning,
                          stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(float16, "convert_float_to_float16", warning_converter)
    with warnings.catch_warnings(record=True) as escaped, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        build_fp16(exported_run.path, tmp_path / "fp16.onnx")
    assert [str(w.message) for w in escaped if "truncated" in str(w.message)] == []
    summaries = [r.getMessage() for r in caplog.records if "converter warnings" in r.getMessage()]
    assert len(summaries) == 1 and "212 converter warnings (212 distinct)" in summaries[0]
    assert (tmp_path / "fp16.onnx").is_file()
