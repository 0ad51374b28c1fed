"""A series' zip (TCIA's getImage answer) or an object name (IDC's bucket) made into files
inside one folder, refusing anything that would land elsewhere.

Every entry is checked before a byte is written: no path outside the folder (``../``,
absolute paths, drive letters), no links or special files, no two entries on one file.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lidcseg.data.sources.remote import CHUNK_BYTES, CorruptSeries, DownloadError, reason_of


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


def safe_extract(zip_path: Path, dest: Path, where: str, keep: Callable[[str], bool]) -> Extracted:
    """Extract the entries ``keep`` accepts into ``dest`` after checking every entry: no path
    outside ``dest``, no links or special files. CRCs are checked and MD5s computed while
    reading, so each file is read once; a damaged zip raises CorruptSeries."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            _check_members(members, where)
            extracted = Extracted([], {})
            for info in members:
                if not keep(info.filename):
                    extracted.left_out.append(info.filename)
                    continue
                name = safe_member_name(info.filename, where).name
                with archive.open(info) as source:
                    extracted.md5[name] = _copy_hashing(source, dest / name)
            return extracted
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        zlib.error,
        NotImplementedError,
    ) as exc:
        raise CorruptSeries(f"{where}: corrupt zip ({reason_of(exc)})") from exc


def _copy_hashing(source, target: Path) -> str:
    digest = hashlib.md5()
    with open(target, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


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
