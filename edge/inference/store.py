"""The model store on a line PC: gated engines by version, and which one runs (`current`).

    /var/lib/steel-inspect/models/      (inside the service's StateDirectory)
      <version>/                        one installed package, e.g. 3-1f2e3d4c
        engine.onnx | engine.plan       the engine built on this machine
        engine.onnx.json | engine.plan.json   its manifest (card, gate verdict)
        package.json                    the package's index (what it was built from)
        install.json                    engine file, backend, precision, when, from which file
      current -> <version>              the model the daemon loads (model.path may name it)
      previous -> <version>             what `edge model rollback` returns to

`current` and `previous` are relative symlinks switched atomically (a new link under a temporary
name renamed over the old one), so a daemon reloading at any moment loads a whole version, never
a half-installed one: a version folder is complete before it gets its final name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("/var/lib/steel-inspect/models")
CURRENT = "current"
PREVIOUS = "previous"
INSTALL_RECORD = "install.json"
_LOCK = ".lock"


@dataclass(frozen=True)
class InstalledVersion:
    name: str
    folder: Path
    record: dict

    @property
    def engine(self) -> Path:
        return self.folder / self.record["engine_file"]


def read_version(folder: Path) -> InstalledVersion:
    folder = Path(folder)
    path = folder / INSTALL_RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{folder}: not an installed model version (no {INSTALL_RECORD})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("engine_file"), str):
        raise ModelError(f"{path}: names no engine_file")
    return InstalledVersion(folder.name, folder, record)


def resolve_model_path(path: Path) -> Path:
    """model.path as a file to load: a file as is; a store folder -> its `current` engine; a
    version folder (or the `current` link) -> its engine. Links are resolved now, once, so one
    load reads one version even if `current` switches meanwhile."""
    version = _version_of(Path(path))
    return Path(path) if version is None else version.engine


def resolve_configured(path: Path, backend: str) -> tuple[Path, str]:
    """(engine file, backend) to load for model.path and model.backend, `current` resolved once.
    An engine from the store is loaded with the backend it was installed for (its install.json):
    install picks the backend that suits the machine, which may not be model.backend."""
    version = _version_of(Path(path))
    if version is None:
        return Path(path), backend
    installed = version.record.get("backend", backend)
    if installed != backend:
        log.warning("%s was installed for backend %s; loading it with %s, not model.backend "
                    "%s", version.folder, installed, installed, backend)
    return version.engine, installed


def _version_of(path: Path) -> InstalledVersion | None:
    if not path.is_dir():
        return None
    if (path / CURRENT).is_symlink() or (path / CURRENT).exists():
        target = (path / CURRENT).resolve()
        if not target.is_dir():
            raise ModelError(f"{path / CURRENT}: points to {target}, which is gone; "
                             "run edge model rollback or install a package")
        return read_version(target)
    if (path / INSTALL_RECORD).is_file():
        return read_version(path.resolve())
    raise ModelError(f"{path}: a folder that is neither a model store (no {CURRENT}) nor an "
                     "installed version; set model.path to an engine file or the store")


class ModelStore:
    def __init__(self, root: Path = DEFAULT_STORE) -> None:
        self.root = Path(root)

    @contextmanager
    def locked(self):
        """One writer at a time (install's check and commit, rollback, remove); says so when it
        has to wait for another."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"another edge model command holds the store {self.root}, waiting",
                      file=sys.stderr, flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            self.remove_leftovers()
            yield

    def _link(self, name: str) -> str | None:
        link = self.root / name
        return os.readlink(link) if link.is_symlink() else None

    @property
    def current(self) -> str | None:
        return self._link(CURRENT)

    @property
    def previous(self) -> str | None:
        return self._link(PREVIOUS)

    def versions(self) -> list[InstalledVersion]:
        """Installed versions, oldest install first (unreadable ones left out: see scan)."""
        return self.scan()[0]

    def scan(self) -> tuple[list[InstalledVersion], list[str]]:
        """(installed versions oldest install first, one line per version folder whose
        install.json cannot be read): one damaged record does not hide the others."""
        if not self.root.is_dir():
            return [], []
        found, unreadable = [], []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and not folder.is_symlink() and not folder.name.startswith(".") \
                    and (folder / INSTALL_RECORD).is_file():
                try:
                    found.append(read_version(folder))
                except ModelError as exc:
                    unreadable.append(str(exc))
        return sorted(found, key=lambda v: (v.record.get("installed", ""), v.name)), unreadable

    def has(self, version: str) -> bool:
        return (self.root / version / INSTALL_RECORD).is_file()

    def staging(self, version: str) -> Path:
        """An empty folder in the store to build `version` in (same file system as its place)."""
        folder = self.root / f".installing-{version}-{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def remove_leftovers(self) -> list[str]:
        """Staging folders and temporary link names of an install or switch that was killed
        (its pid is gone); call under the lock. Returns the names removed."""
        removed = []
        for entry in self.root.iterdir():
            if not entry.name.startswith((".installing-", f".{CURRENT}-", f".{PREVIOUS}-")):
                continue
            pid = entry.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed

    def commit(self, staging: Path, version: str, record: dict) -> str | None:
        """Give a built and gated `staging` folder its version name and make it current;
        returns the version that was current before (None: the first). Everything is on disk
        before `current` switches, so a power cut never leaves it on a half-written engine."""
        record = {**record, "version": version,
                  "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (staging / INSTALL_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if self.has(version):
            raise ModelError(f"{self.root / version}: already installed")
        _fsync_tree(staging)
        os.rename(staging, self.root / version)
        _fsync(self.root)
        return self.switch(version)

    def switch(self, version: str) -> str | None:
        """Point `current` at `version` (and `previous` at the old current); returns the old."""
        if not self.has(version):
            raise ModelError(f"{self.root}: no installed version {version!r}")
        old = self.current
        if old == version:
            return old
        if old is not None and self.has(old):
            self._relink(PREVIOUS, old)
        self._relink(CURRENT, version)
        return old

    def rollback(self) -> tuple[str, str]:
        """Swap `current` and `previous`; returns (from, to)."""
        current, previous = self.current, self.previous
        if previous is None or not self.has(previous):
            raise ModelError(f"{self.root}: no previous version to roll back to")
        self.switch(previous)
        return current, previous

    def remove(self, version: str, force: bool = False) -> None:
        """Delete an installed version; never the current one, the previous one (the only
        rollback target, which a daemon not yet reloaded may still run) only with `force`."""
        if version in (CURRENT, PREVIOUS) or "/" in version or version.startswith("."):
            raise ModelError(f"{version!r}: give a version name (edge model list)")
        if not self.has(version):
            raise ModelError(f"{self.root}: no installed version {version!r}")
        if version == self.current:
            raise ModelError(f"{version}: is the current model; install or roll back to another "
                             "first")
        if version == self.previous:
            if not force:
                raise ModelError(f"{version}: is the previous model, the only one edge model "
                                 "rollback returns to (and a daemon not reloaded yet may run "
                                 "it); --force removes it")
            (self.root / PREVIOUS).unlink()
        shutil.rmtree(self.root / version)

    def _relink(self, name: str, version: str) -> None:
        temporary = self.root / f".{name}-{os.getpid()}"
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(version, temporary)
        os.replace(temporary, self.root / name)
        _fsync(self.root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for parent, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(parent) / name)
        _fsync(Path(parent))
