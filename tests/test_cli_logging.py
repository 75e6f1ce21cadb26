"""CLI logging in a process that runs several commands: no record goes to a closed stream."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from edge.clirunner import CurrentStreamHandler, configure_logging
from edge.commands.run import log_to_stdout


@pytest.fixture
def restored_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("install", "stream_name"),
    [(lambda: configure_logging(False), "stderr"), (lambda: log_to_stdout("INFO"), "stdout")],
    ids=["configure_logging", "edge-run"],
)
def test_records_follow_the_current_stream_after_the_first_is_closed(
    install, stream_name, restored_root_logger, monkeypatch
):
    first = io.StringIO()
    monkeypatch.setattr(sys, stream_name, first)
    install()
    logging.getLogger("steel.test").info("first command")
    assert "first command" in first.getvalue()
    first.close()

    second, errors = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, stream_name, second)
    if stream_name != "stderr":
        monkeypatch.setattr(sys, "stderr", errors)
    logging.getLogger("steel.test").info("second command")

    assert "second command" in second.getvalue()
    assert "Logging error" not in errors.getvalue() + second.getvalue()


def test_commands_replace_their_own_handler_and_keep_foreign_ones(restored_root_logger):
    foreign = logging.NullHandler()
    restored_root_logger.addHandler(foreign)
    configure_logging(False)
    log_to_stdout("INFO")
    configure_logging(True)

    own = [h for h in restored_root_logger.handlers if isinstance(h, CurrentStreamHandler)]
    assert [h.stream_name for h in own] == ["stderr"]
    assert foreign in restored_root_logger.handlers
    assert restored_root_logger.level == logging.DEBUG
