"""A series' zip (TCIA's getImage answer) or an object name (IDC's bucket) made into files
inside one folder, refusing anything that would land elsewhere.

Every entry is checked before a byte is written: no path outside the folder (``../``,
absolute paths, drive letters), no links or special files, no two entries on one file, and
no more bytes unpacked than the series may take (a zip bomb: a few kB that unpack to a full
disk). The sizes the zip declares are checked first: together at most ``max_bytes``
(answers.series_limit), and an entry over 1 MiB at most :data:`MAX_RATIO` times its
compressed size (CT DICOM deflates 2 to 4 times; only a bomb reaches 100). The bytes
actually written are counted against the same limit while writing, and a write that fails
(a full disk) names the file it was writing.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lidcseg.data.sources.answers import too_large
from lidcseg.data.sources.remote import CHUNK_BYTES, CorruptSeries, DownloadError, reason_of

MAX_RATIO = 100
RATIO_FROM_BYTES = 1 << 20  # a small entry may deflate well (a blank slice); it costs little


def safe_member_name(name: str, where: str) -> PurePosixPath:
    """A zip entry or object name as a relative path that stays inside its folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        path.is_absolute()
        or (path.parts and ":" in path.parts[0])
        or ".." in path.parts
        or not path.parts
    ):
        raise DownloadError(
            f"{where}: entry {name!r} would be written outside the series folder; refused"
        )
    return path


@dataclass
class Extracted:
    left_out: list[str]  # entries not kept
    md5: dict[str, str]  # kept file name -> MD5 hex, computed while writing it


def safe_extract(
    zip_path: Path, dest: Path, where: str, keep: Callable[[str], bool], max_bytes: int
) -> Extracted:
    """Extract the entries ``keep`` accepts into ``dest`` after checking every entry: no path
    outside ``dest``, no links or special files, at most ``max_bytes`` unpacked. CRCs are
    checked and MD5s computed while reading, so each file is read once; a damaged zip raises
    CorruptSeries."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            _check_members(members, where)
            kept = [info for info in members if keep(info.filename)]
            _check_sizes(kept, zip_path, where, max_bytes)
            extracted = Extracted([i.filename for i in members if i not in kept], {})
            written = 0
            for info in kept:
                target = dest / safe_member_name(info.filename, where).name
                with archive.open(info) as source:
                    extracted.md5[target.name], written = _copy_hashing(
                        source, target, f"{where}: {zip_path.name}", written, max_bytes
                    )
            return extracted
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        zlib.error,
        NotImplementedError,
    ) as exc:
        raise CorruptSeries(f"{where}: corrupt zip ({reason_of(exc)})") from exc


def _check_sizes(kept: list[zipfile.ZipInfo], zip_path: Path, where: str, max_bytes: int):
    """Refuse, before writing, a zip that declares more than the series may take."""
    declared = sum(info.file_size for info in kept)
    if declared > max_bytes:
        largest = max(kept, key=lambda info: info.file_size).filename
        raise DownloadError(
            f"{where}: {zip_path.name} declares {declared:,} bytes unpacked (the largest entry "
            f"{largest!r}), more than the {max_bytes:,} this series may take"
        )
    for info in kept:
        if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * info.compress_size:
            raise DownloadError(
                f"{where}: {zip_path.name}: entry {info.filename!r} unpacks {info.compress_size:,} "
                f"bytes to {info.file_size:,}, more than {MAX_RATIO} times (a zip bomb)"
            )


def _copy_hashing(
    source, target: Path, where: str, written: int, max_bytes: int
) -> tuple[str, int]:
    """Copy ``source`` to ``target``; return its MD5 hex and the series' bytes written so far
    (``written`` before it), refusing when they pass ``max_bytes``."""
    digest = hashlib.md5()
    try:
        with open(target, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                if written + len(chunk) > max_bytes:
                    raise too_large(where, f"writing {target}", max_bytes, "this series")
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
    except OSError as exc:
        raise DownloadError(f"{where}: writing {target}: {exc.strerror or exc}") from exc
    return digest.hexdigest(), written


def _check_members(members: list[zipfile.ZipInfo], where: str) -> None:
    """Refuse the whole zip before writing a byte: entries outside the folder, links,
    special files, two entries that would land on the same file."""
    seen = set()
    for info in members:
        name = safe_member_name(info.filename, where).name
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix mode
        if file_type not in (0, stat.S_IFREG):
            raise DownloadError(
                f"{where}: entry {info.filename!r} is a link or special file; refused"
            )
        if name in seen:
            raise DownloadError(f"{where}: two entries named {name!r}; refused")
        seen.add(name)
