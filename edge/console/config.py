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


def _check_basic_user(value: str) -> str:
    if not 1 <= len(value) <= 64 or ":" in value or not value.isprintable():
        raise ValueError("must be 1 to 64 printable characters without ':' (HTTP Basic auth)")
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
        "a token (`token_file` or `token_credential`) or Basic auth (`basic_user` and "
        "`basic_password_file` or `basic_password_credential`)",
    )
    token_file: ConfigPath | None = Field(
        None, description="file holding the access token (Bearer header, or ?token= once)"
    )
    token_credential: str | None = Field(
        None, description="systemd credential name holding the token "
        "($CREDENTIALS_DIRECTORY/NAME)",
    )
    basic_user: Annotated[str, AfterValidator(_check_basic_user)] | None = Field(
        None, description="user name of HTTP Basic auth (the browser asks for it)"
    )
    basic_password_file: ConfigPath | None = Field(
        None, description="file whose first line is basic_user's password (the password "
        "itself never goes in edge.toml)",
    )
    basic_password_credential: str | None = Field(
        None, description="systemd credential name holding basic_user's password "
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
        has_password = self.basic_password_file or self.basic_password_credential
        if self.basic_password_file and self.basic_password_credential:
            raise ValueError("set basic_password_file or basic_password_credential, not both")
        if bool(self.basic_user) != bool(has_password):
            raise ValueError("Basic auth needs both basic_user and basic_password_file (or "
                             "basic_password_credential)")
        if not is_loopback(self.host) and not (
                self.token_file or self.token_credential or self.basic_user):
            raise ValueError(
                f"listen = {self.listen!r} is not a loopback address: set token_file or "
                "token_credential, or basic_user and basic_password_file"
            )
        return self

    def read_token(self) -> str | None:
        """The access token, or None when none is configured."""
        secret = _read_secret(self.token_file, self.token_credential, "token")
        if secret is None:
            return None
        token, where = secret[0].strip(), secret[1]
        if len(token) < 16:
            raise ConfigError(f"console.{where}: the token must have at least 16 characters")
        return token

    def read_basic(self) -> tuple[str, str] | None:
        """(basic_user, password), or None when Basic auth is not configured."""
        secret = _read_secret(self.basic_password_file, self.basic_password_credential,
                              "basic_password")
        if secret is None or self.basic_user is None:
            return None
        lines, where = secret[0].splitlines(), secret[1]
        password = lines[0] if lines else ""
        if len(password) < 8:
            raise ConfigError(f"console.{where}: the password (its first line) must have at "
                              "least 8 characters")
        return self.basic_user, password


def _read_secret(file: Path | None, credential: str | None,
                 what: str) -> tuple[str, str] | None:
    """(text, key) of console.{what}_file or of the systemd credential
    console.{what}_credential; errors name the key and the file, never any of its content."""
    if credential:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise ConfigError(
                f"console.{what}_credential = {credential!r}: "
                "$CREDENTIALS_DIRECTORY is not set (not started by systemd?)"
            )
        path, key = Path(folder) / credential, f"{what}_credential"
    elif file:
        path, key = file, f"{what}_file"
    else:
        return None
    try:
        return path.read_bytes().decode("utf-8"), key
    except OSError as exc:
        raise ConfigError(f"console.{key}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"console.{key}: {path} is not UTF-8 text (invalid byte at offset "
                          f"{exc.start})") from None
