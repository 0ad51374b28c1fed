"""Every file of a copy on disk, whatever its layout, with its size and time: one pass.

Folders reached through symbolic links are followed (a copy gathered from several disks by
links is a copy), each real folder once: a link that leads back to a folder already walked
is a loop, said and skipped. A folder that cannot be listed (no read permission) is said and
skipped; the rest of the copy is indexed. Hidden files and folders (a leading dot) are not
part of a copy.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class WalkReport:
    """What the walk left out, named (each also a log line)."""

    loops: list[str] = field(default_factory=list)  # links back to a folder already walked
    unlisted: list[str] = field(default_factory=list)  # folders that could not be listed
    broken_links: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FoundFile:
    path: str  # relative to the copy's root, "/"-separated
    size: int
    mtime_ns: int


def walk_copy(root: str) -> tuple[list[FoundFile], WalkReport]:
    """Every regular file below ``root`` (links followed, each real folder once)."""
    report = WalkReport()
    files: list[FoundFile] = []
    top = os.stat(root)
    seen = {(top.st_dev, top.st_ino): ""}
    pending = [""]
    while pending:
        relative = pending.pop()
        for entry in _entries(root, relative, report):
            name = f"{relative}/{entry.name}" if relative else entry.name
            try:
                info = entry.stat()  # follows links
            except OSError:
                report.broken_links.append(name)
                log.warning("%s: a link to nothing (skipped)", os.path.join(root, name))
                continue
            if entry.is_dir():
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    _loop(root, name, seen[key], report)
                    continue
                seen[key] = name
                pending.append(name)
            elif entry.is_file():
                files.append(FoundFile(name, info.st_size, info.st_mtime_ns))
    files.sort(key=lambda f: f.path)
    return files, report


def _entries(root: str, relative: str, report: WalkReport) -> list[os.DirEntry]:
    folder = os.path.join(root, relative) if relative else root
    try:
        with os.scandir(folder) as listing:
            return sorted(
                (entry for entry in listing if not entry.name.startswith(".")),
                key=lambda entry: entry.name,
            )
    except OSError as exc:  # PermissionError above all: the folder is skipped, named
        report.unlisted.append(relative or ".")
        log.warning(
            "%s: cannot be listed (%s): its files are left out, the rest of the copy is indexed",
            folder,
            exc.strerror or exc,
        )
        return []


def _loop(root: str, name: str, first: str, report: WalkReport) -> None:
    report.loops.append(name)
    log.warning(
        "%s: a link back to %s, already indexed (a loop, or the same folder twice): skipped",
        os.path.join(root, name),
        os.path.join(root, first) if first else root,
    )
