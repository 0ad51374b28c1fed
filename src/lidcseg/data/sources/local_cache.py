"""The headers of every file of a copy on disk, read in parallel and kept between runs.

A rerun rereads only the files whose size or modification time changed (or that are new),
so indexing 128 GB again after adding a few patients takes seconds. The cache is a file of
the workflow's (under dataset.root, never in the copy), saved as the reads go, so an index
killed halfway resumes where it was.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lidcseg.data.sources.local_headers import FileHeader, read_file_header
from lidcseg.data.sources.local_walk import FoundFile
from lidcseg.io import write_text

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SAVE_EVERY_S = 30.0  # a killed index loses at most this much reading


def read_headers(
    root: str, found: list[FoundFile], cache_path: Path, workers: int
) -> tuple[dict[str, FileHeader], int]:
    """``{relative path: FileHeader}`` of every found file, and how many were read afresh
    (the others came from the cache, their size and time unchanged)."""
    cache = _load(cache_path, root)
    headers: dict[str, FileHeader] = {}
    todo: list[FoundFile] = []
    for item in found:
        kept = cache.get(item.path)
        if kept is not None and kept[0] == item.size and kept[1] == item.mtime_ns:
            headers[item.path] = FileHeader.from_row(kept[2:])
        else:
            todo.append(item)
    fresh = {item.path: [item.size, item.mtime_ns] for item in found}
    for item, header in _read(root, todo, workers, lambda: _save(cache_path, root, headers, fresh)):
        headers[item.path] = header
    _save(cache_path, root, headers, fresh)
    return headers, len(todo)


def _read(root: str, todo: list[FoundFile], workers: int, checkpoint):
    """(file, header) of each of ``todo``, in chunks over ``workers`` processes."""
    if not todo:
        return
    size = max(64, min(2000, len(todo) // (workers * 8) or 1))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    paths = [[os.path.join(root, item.path) for item in chunk] for chunk in chunks]
    last_save = time.monotonic()
    if workers == 1:
        answers = map(_read_chunk, paths)
        yield from _pairs(chunks, answers, checkpoint, last_save)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from _pairs(chunks, pool.map(_read_chunk, paths), checkpoint, last_save)


def _pairs(chunks, answers, checkpoint, last_save: float):
    for chunk, rows in zip(chunks, answers):
        yield from zip(chunk, (FileHeader.from_row(row) for row in rows))
        if time.monotonic() - last_save > SAVE_EVERY_S:
            checkpoint()
            last_save = time.monotonic()


def _read_chunk(paths: list[str]) -> list[list[str]]:
    return [read_file_header(path).as_row() for path in paths]


def _load(path: Path, root: str) -> dict[str, list]:
    """The cache of this copy; an unreadable one, or another copy's, is started afresh."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("format") != CACHE_FORMAT or data.get("root") != root:
        log.info("%s: of another copy or format: every header is read afresh", path)
        return {}
    return data.get("files", {})


def _save(path: Path, root: str, headers: dict[str, FileHeader], stats: dict) -> None:
    files = {name: [*stats[name], *header.as_row()] for name, header in headers.items()}
    payload = {"format": CACHE_FORMAT, "root": root, "files": files}
    write_text(json.dumps(payload, separators=(",", ":")), path)
