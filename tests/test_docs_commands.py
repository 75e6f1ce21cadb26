"""Every command line in README.md and docs/*.md parses with the real argument parsers.

Only the parsing runs (no command): a renamed option, a wrong subcommand or a documented option
of the wrong command fails here, so the docs stay true to `--help`. Placeholders (`DIR`, `N`)
stand for a value; an inline mention in prose (`train fit --splits FILE`) names options without
the required ones, so only there a missing required option is accepted.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from convert.cli import COMMANDS as CONVERT_COMMANDS
from edge.cli import COMMANDS as EDGE_COMMANDS
from edge.clirunner import build_parser
from train.cli import COMMANDS as TRAIN_COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = {"train": TRAIN_COMMANDS, "convert": CONVERT_COMMANDS, "edge": EDGE_COMMANDS}
PREFIX = re.compile(r"^(?:sudo\s+)?(?:\S*/)?(train|convert|edge)\s+(-v\s+)?([a-z][a-z-]*)\b")
FENCE = re.compile(r"^```.*?$(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")


def _fenced_lines(text: str):
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        yield from joined.splitlines()


def _inline_commands(text: str):
    prose = FENCE.sub("", text)
    for span in INLINE.findall(prose):
        if " --" in span and "..." not in span:
            yield span


def documented_commands() -> list[tuple[str, str, bool]]:
    """(doc file, command line, whether it is an inline mention)."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        lines = [(line, False) for line in _fenced_lines(text)]
        lines += [(span, True) for span in _inline_commands(text)]
        for line, inline in lines:
            command = line.split(" #")[0].strip()
            match = PREFIX.match(command)
            if match and not command[match.end():].startswith(":"):  # not an output line
                found.append((path.name, command, inline))
    return found


def parse(command: str) -> tuple[int, str]:
    """(exit code of argparse, its stderr); 0 when the line parses."""
    words = shlex.split(command.replace("[", " ").replace("]", " "))
    while words and ("/" in words[0] or words[0] == "sudo") and words[0] not in PROGRAMS:
        if words[0].rsplit("/", 1)[-1] in PROGRAMS:
            words[0] = words[0].rsplit("/", 1)[-1]
            break
        words.pop(0)
    program = words[0]
    argv = ["1" if re.fullmatch(r"[A-Z][A-Z_]*", w) else w for w in words[1:]]
    parser = build_parser(program, "", PROGRAMS[program])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0), err.getvalue()
    return 0, ""


COMMANDS = documented_commands()


def test_the_docs_have_command_lines_of_every_program():
    programs = {PREFIX.match(c).group(1) for _, c, _ in COMMANDS}
    assert programs == set(PROGRAMS), programs
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("doc", "command", "inline"), COMMANDS)
def test_documented_command_parses(doc, command, inline):
    code, err = parse(command)
    if inline and "the following arguments are required" in err:
        return
    assert code == 0, f"{doc}: {command}\n{err}"


def test_the_check_catches_a_wrong_option():
    assert parse("train fit --data D --out R -v")[0] == 2  # `-v` belongs to `train`, not `fit`
    assert parse("train -v fit --data D --out R")[0] == 0
    assert parse("train evaluate --run R --split nope")[0] == 2
