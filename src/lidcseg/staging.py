"""How a command's outputs appear: each file whole, a group of files all together, a folder
replaced (never merged), one run at a time on a folder, and a full disk named.

- ``atomic_file``: the file is written to a temporary name beside its target and renamed onto
  it when the block ends well; until then the previous file is untouched.
- ``output_group``: the files written inside are renamed onto their targets together. One
  rename is atomic, several are not: a job killed between two renames would leave a volume
  new and its sidecar old or missing. So each target is first marked (``.incomplete-<name>``
  beside it), then all are renamed, then the marks are removed; a kill in between leaves the
  marks, and the readers (``check_complete``, which io's readers call) refuse a marked file,
  naming it, until a rerun writes the group again.
- ``staged_folder``: a command's many files are written into a hidden folder beside their
  own; each of its top-level entries then replaces its namesake whole (a folder's old files
  are set aside and removed, never mixed with the new ones), committed as a group.
- ``output_lock``: one run at a time writes a staged folder. A second run on the same folder
  is refused, naming the lock file; the lock is an ``flock``, which the kernel releases when
  its holder dies, so a killed run leaves no lock that stops the next one.
- A full disk (ENOSPC, or a quota: EDQUOT) while writing an output is named with that output,
  in one line; the previous file stays.
"""

from __future__ import annotations

import contextvars
import errno
import fcntl
import glob
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from lidcseg.errors import LidcsegError

MARK = ".incomplete-"
FULL = (errno.ENOSPC, errno.EDQUOT)

# The output group being written, if any: the (temporary, target) renames it holds back.
_GROUP: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "lidcseg_output_group", default=None
)


class OutputError(LidcsegError):
    """An output that cannot be written (a full disk, a folder another run is writing) or an
    input a killed job left incomplete; names the file."""


def check_complete(path: str | os.PathLike) -> None:
    """Refuse ``path`` when the output group that wrote it (or its folder) was cut short by a
    kill: its companions may be missing or of an older run, so using it would go wrong
    silently (a volume without the real slice positions of its sidecar, say)."""
    path = Path(os.path.abspath(path))
    for target in (path, path.parent):
        if target.name and _mark(target).exists():
            raise OutputError(
                f"{path}: its output group was cut short ({_mark(target).name} beside "
                f"{target.name}: the job writing it was killed); rerun the command that writes it"
            )


def no_space(target: str | os.PathLike, error: OSError) -> OutputError | None:
    """The one-line error for a full disk while writing ``target``, else None."""
    if error.errno not in FULL:
        return None
    return OutputError(f"{target}: {os.strerror(error.errno)} while writing it (left as it was)")


def commit(pairs: list[tuple[Path, Path]], aside: Path | None = None) -> None:
    """Rename each (staged, target) pair, all or nothing across a kill (see the module's
    docstring). A target folder is first moved into ``aside`` (then removed by the caller): a
    folder output replaces the old one, never merges into it."""
    marks = [_mark(target) for _, target in pairs]
    try:
        for mark in marks:
            mark.touch()
    except OSError as error:
        for made in marks:
            made.unlink(missing_ok=True)
        if (full := no_space(mark.parent, error)) is None:
            raise
        raise full from None
    for staged, target in pairs:
        if aside is not None and os.path.lexists(target) and (staged.is_dir() or target.is_dir()):
            os.replace(target, aside / f".replaced-{target.name}")
        os.replace(staged, target)
    for mark in marks:
        mark.unlink(missing_ok=True)


@contextmanager
def output_lock(out: Path):
    """Hold ``.<name>.lock`` beside ``out`` for the block; refuse when another run holds it."""
    lock = out.parent / f".{out.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                f"{lock}: another run is writing {out} (it holds this lock); wait for it to end"
            ) from None
        try:  # the holder before us may have removed the file we opened: lock the current one
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def staged_folder(out_dir: str | os.PathLike):
    """A temporary folder beside ``out_dir`` to write a command's many outputs into; when the
    block ends well each of its top-level entries replaces its namesake in ``out_dir`` (a
    folder whole), all together (:func:`commit`), else none does. One run at a time."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir):
        out_dir.mkdir(exist_ok=True)
        for stale in out_dir.parent.glob(glob.escape(f".tmp-{out_dir.name}-") + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
        try:
            try:
                yield staging
            except OSError as error:
                where = Path(error.filename or staging)  # named as it will be, not as staged
                if where.is_relative_to(staging):
                    where = out_dir / where.relative_to(staging)
                if (full := no_space(where, error)) is None:
                    raise
                raise full from None
            entries = sorted(staging.iterdir())
            commit([(entry, out_dir / entry.name) for entry in entries], aside=staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def output_group():
    """Files written inside (by io's writers) appear together or not at all: each goes to its
    temporary file as usual, and all are renamed onto their targets only when the block ends
    well (:func:`commit`: a kill half-way is seen by the readers); on an error the temporary
    files are removed. A command with several outputs in different folders (convert's volume
    and info, annotate's mask, table and summary, extract's arrays and rows, evaluate's four
    files) writes them in one group, so a failure half-way never leaves some looking done."""
    if _GROUP.get() is not None:  # nested: part of the enclosing group
        yield
        return
    pending: list[tuple[Path, Path]] = []
    token = _GROUP.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _GROUP.reset(token)
    commit(pending)


def atomic_file(path: str | os.PathLike) -> AtomicPath:
    """``with atomic_file(path) as tmp:`` write ``tmp``; it becomes ``path`` when the block
    ends well (with the enclosing output group, if any), else it is removed."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return AtomicPath(Path(path))


class AtomicPath:
    """Context manager yielding a temporary path beside ``target``; renamed onto it on success."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> str:
        # A job killed while writing leaves its temporary file; one target is written by one
        # job at a time, so the next write of the same target removes what a killed one left.
        prefix = f".tmp-{self.target.name}-"
        for stale in self.target.parent.glob(glob.escape(prefix) + "*"):
            stale.unlink(missing_ok=True)
        # Keep the full suffix (.nii.gz) so libraries pick the right writer.
        suffix = "".join(self.target.suffixes)
        fd, self.tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.target.parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            Path(self.tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and (full := no_space(self.target, exc)):
                raise full from None
            return
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600: give every output one mode
        group = _GROUP.get()
        if group is None:
            commit([(Path(self.tmp), self.target)])
        else:
            group.append((Path(self.tmp), self.target))


def _mark(target: Path) -> Path:
    return target.with_name(MARK + target.name)
