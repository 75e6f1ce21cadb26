"""`edge`: the line-PC daemon and its tools."""

from edge.clirunner import run_main

COMMANDS = {
    "run": ("edge.commands.run", "run the daemon (logs to stdout for journald)"),
    "check": ("edge.commands.check", "check config, model, camera and broker; exit 0 if all pass"),
    "replay": ("edge.commands.replay", "process a folder of images once and wait for every ack"),
    "monitor": ("edge.commands.monitor", "live summary of a camera's MQTT topics"),
    "console": ("edge.commands.console", "read-only web page of the line (inspection console)"),
    "archive": ("edge.commands.archive", "export archived frames as a Severstal-format folder"),
    "model": ("edge.commands.model", "install, list, roll back or remove gated models"),
}


def main(argv=None) -> int:
    return run_main("edge", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
