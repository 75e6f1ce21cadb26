"""`[console]` of edge.toml: where the inspection console listens and who may read it."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from edge.config import ConfigPath, Section
from edge.errors import ConfigError


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return value


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleConfig(Section):
    listen: Annotated[str, AfterValidator(_check_listen)] = Field(
        "127.0.0.1:8080",
        description="HOST:PORT the console serves on; any other host than loopback needs "
        "`token_file` or `token_credential`",
    )
    token_file: ConfigPath | None = Field(
        None, description="file holding the access token (Bearer header, or ?token= once)"
    )
    token_credential: str | None = Field(
        None, description="systemd credential name holding the token "
        "($CREDENTIALS_DIRECTORY/NAME)",
    )
    archive_path: ConfigPath | None = Field(
        None, description="image archive root (defect images, coil maps, latest frames); "
        "unset = the daemon's (archive.path, or `archive` beside outbox.path)",
    )
    max_events: int = Field(
        10000, ge=10, le=1_000_000, description="recent defect events kept in memory at most"
    )
    max_coils: int = Field(
        200, ge=1, le=100_000, description="recent coil reports kept in memory at most"
    )
    page_size: int = Field(60, ge=1, le=1000, description="defect images per gallery page")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @model_validator(mode="after")
    def _auth_off_loopback(self, info: ValidationInfo) -> ConsoleConfig:
        if not is_loopback(self.host) and not (self.token_file or self.token_credential):
            raise ValueError(
                f"listen = {self.listen!r} is not a loopback address: set token_file or "
                "token_credential"
            )
        return self

    def read_token(self) -> str | None:
        """The access token, or None when none is configured (loopback only)."""
        if self.token_credential:
            folder = os.environ.get("CREDENTIALS_DIRECTORY")
            if not folder:
                raise ConfigError(
                    f"console.token_credential = {self.token_credential!r}: "
                    "$CREDENTIALS_DIRECTORY is not set (not started by systemd?)"
                )
            path = Path(folder) / self.token_credential
        elif self.token_file:
            path = self.token_file
        else:
            return None
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"console: cannot read the token {path}: {exc.strerror}") from None
        if len(token) < 16:
            raise ConfigError(f"console: {path}: the token must have at least 16 characters")
        return token
