"""CLI logging in a process that runs several commands: no record goes to a closed stream."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from edge.clirunner import CurrentStreamHandler, configure_logging
from edge.commands.run import log_to_stdout


@pytest.fixture
def root_logger():
    """The root logger, restored after the test to what pytest had set."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def bare(root: logging.Logger) -> logging.Logger:
    """Set pytest's capture handlers aside (they are added after fixtures run): a plain process."""
    root.handlers.clear()
    return root


@pytest.mark.parametrize(
    ("install", "stream_name"),
    [(lambda: configure_logging(False), "stderr"), (lambda: log_to_stdout("INFO"), "stdout")],
    ids=["configure_logging", "edge-run"],
)
def test_records_follow_the_current_stream_after_the_first_is_closed(
    install, stream_name, root_logger, monkeypatch
):
    bare(root_logger)
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


def test_each_command_replaces_the_handler_of_the_one_before(root_logger):
    bare_root_logger = bare(root_logger)
    configure_logging(False)
    log_to_stdout("INFO")
    configure_logging(True)

    own = [h for h in bare_root_logger.handlers if isinstance(h, CurrentStreamHandler)]
    assert [h.stream_name for h in own] == ["stderr"]
    assert bare_root_logger.level == logging.DEBUG


def test_logging_the_host_process_configured_is_left_alone(root_logger):
    bare_root_logger = bare(root_logger)
    foreign = logging.NullHandler()
    bare_root_logger.addHandler(foreign)
    bare_root_logger.setLevel(logging.WARNING)
    configure_logging(True)
    log_to_stdout("DEBUG")

    assert bare_root_logger.handlers == [foreign]
    assert bare_root_logger.level == logging.WARNING
