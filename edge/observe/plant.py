"""Plant integration beside inspection: Sparkplug B edge node, metrics endpoint, SCADA commands.

The daemon calls start/tick/stop; a failure here is logged and never reaches inspection.
"""

from __future__ import annotations

import logging
import time

from edge.control.handlers import DaemonCommands
from edge.control.server import CommandServer
from edge.delivery.sparkplug import SparkplugNode
from edge.observe import snapshot
from edge.observe.metrics import MetricsServer
from edge.sources.base import CameraState

log = logging.getLogger(__name__)


class PlantIntegration:
    def __init__(self, daemon) -> None:
        self._daemon = daemon
        self.sparkplug: SparkplugNode | None = None
        self.metrics: MetricsServer | None = None
        self.commands: CommandServer | None = None
        self.command_handlers: DaemonCommands | None = None
        self._next_data = 0.0

    def start(self) -> None:
        daemon, config = self._daemon, self._daemon.config
        if config.commands.enabled:
            self.command_handlers = DaemonCommands(daemon, config.outbox.path.parent)
            self.command_handlers.restore()
            self.commands = CommandServer(config.mqtt, config.site,
                                          self.command_handlers.handlers())
            self.commands.start()
        if config.metrics.enabled:
            self.metrics = MetricsServer(config.metrics, daemon)
            self.metrics.start()
        if config.sparkplug.enabled:
            self.sparkplug = SparkplugNode(
                config.sparkplug, config.mqtt, config.site,
                state_dir=config.outbox.path.parent,
                class_names=daemon.model.card.class_names,
                node_values=lambda: snapshot.node_values(daemon),
                device_values=lambda: snapshot.device_values(daemon),
                device_alive=lambda: daemon.source.state is CameraState.OK,
            )
            self.sparkplug.start()

    def tick(self) -> None:
        if self.sparkplug is None:
            return
        self.sparkplug.watch_device()  # a lost camera's DDEATH need not wait for the next DDATA
        now = time.monotonic()
        if now >= self._next_data:
            self._next_data = now + self._daemon.config.sparkplug.data_interval
            self.sparkplug.tick()

    def stop(self) -> None:
        if self.commands is not None:
            self.commands.stop()
            self.commands = None
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.sparkplug is not None:
            try:
                self.sparkplug.stop()
            except Exception:  # noqa: BLE001
                log.exception("Sparkplug stop failed")
            self.sparkplug = None
