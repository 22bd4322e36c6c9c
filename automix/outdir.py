"""The output folder of a command-line run, replaced as a whole.

A run writes its files into a staging folder inside the output folder OUT
(``OUT/.automix-tmp-XXXXXXXX``: the same file system as the files it replaces, even when OUT is
a mount point, and writable whenever OUT is) and only when every file is complete swaps them in:
automix's earlier files (the run's names: mix.wav, master.wav, ...) move into the staging
folder, the new ones into OUT, a few renames with SIGINT and SIGTERM held back; then the staging
folder, with the old files, is deleted.  A failure anywhere, the swap included, leaves OUT with
exactly the files it had (a folder automix created is removed again); files in OUT that are not
automix's are never touched.  An exclusive lock on OUT (``flock`` of the folder itself: nothing
to clean up) keeps a second run out while one is running.  Only a hard kill (SIGKILL, power
loss) can leave a staging folder behind; the next run into OUT deletes it.

Problems are :class:`AutomixError` with one line: OUT is a file or in use, a file of the set is
a directory, OUT cannot be created or written (checked before any computation), and the
operating system's errors while writing (a full disk, a read-only file system, no permission),
named by the final path (``OUT/master.wav``), not the staging one.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AutomixError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

STAGING_PREFIX = ".automix-tmp-"

_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.EISDIR: "is a directory",
            errno.ENOTDIR: "a part of the path is not a folder", errno.EFBIG: "file too large",
            errno.ENAMETOOLONG: "the name is too long", errno.EIO: "input/output error"}


def os_error_text(exc: OSError) -> str:
    """One line for an operating-system error: ``path: what went wrong``."""
    reason = _REASONS.get(exc.errno) or exc.strerror or str(exc)
    name = exc.filename
    return f"{os.fsdecode(name)}: {reason}" if name is not None else reason


@contextmanager
def signals_held():
    """SIGINT and SIGTERM wait (are delivered after the block) while the block runs: for the few
    renames of a swap, and the cleanup, which an interrupt must not cut in half."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # no POSIX signal masks
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class OutputFolder:
    """``with OutputFolder(out, names, force) as folder:`` write each file to
    ``folder.path(name)`` (background writes: :meth:`submit`), then :meth:`commit`.  Leaving the
    block without a commit (an error, Ctrl-C) discards the new files."""

    def __init__(self, out, names: list[str], force: bool, inputs=()):
        self.out = Path(os.path.abspath(out))
        self.names = list(names)
        self.force = force
        self.inputs = [Path(p) for p in inputs]
        self.created: list[Path] = []  # folders this run made (removed again on failure)
        self.lock_fd: int | None = None
        self.locked = False
        self.staging: Path | None = None
        self.jobs: list = []
        self.committed = False

    # ------------------------------------------------------------------ before the computation

    def __enter__(self) -> "OutputFolder":
        try:
            self._open()
        except BaseException as exc:
            text = self._text(exc) if isinstance(exc, OSError) else None
            self._close(failed=True)
            if text is not None:
                raise AutomixError(text) from None
            raise
        return self

    def _open(self) -> None:
        out = self.out
        resolved = out.resolve()
        for src in self.inputs:
            src = src.resolve()
            folder = src if src.is_dir() else src.parent
            if resolved == folder or (src.is_dir() and folder in resolved.parents):
                raise AutomixError(f"{out}: the output folder is an input folder; "
                                   "choose another -o")
        if (out.exists() or out.is_symlink()) and not out.is_dir():
            raise AutomixError(f"{out}: exists and is not a folder")
        missing = []
        for p in [out, *out.parents]:
            if p.is_dir():
                break
            missing.append(p)
        for p in reversed(missing):
            try:
                p.mkdir()
                self.created.append(p)
            except FileExistsError:
                if not p.is_dir():
                    raise AutomixError(f"{p}: exists and is not a folder") from None
            except OSError as exc:
                raise AutomixError(f"{p}: cannot create the output folder "
                                   f"({os_error_text(exc).split(': ')[-1]})") from None
        self._lock()
        if self.locked:  # staging folders left by a killed run (no other run is in OUT)
            for stale in out.glob(STAGING_PREFIX + "*"):
                shutil.rmtree(stale, ignore_errors=True)
        if not self.force:
            present = [p for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX)]
            if present:
                existing = [n for n in self.names if (out / n).exists()] or ["other files"]
                raise AutomixError(f"{out}: the output folder exists ({', '.join(existing)}); "
                                   "use --force to replace automix's files in it")
        for name in self.names:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                raise AutomixError(f"{p} is a directory; automix writes a file there "
                                   "(move it away or choose another -o)")
        try:  # the write permission the swap needs, checked before any work is done
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
            (self.staging / "old").mkdir()
        except OSError as exc:
            raise AutomixError(f"{out}: cannot write to the output folder "
                               f"({_REASONS.get(exc.errno) or exc.strerror})") from None

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            self.lock_fd = os.open(self.out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise AutomixError(f"{self.out}: cannot open the output folder "
                               f"({_REASONS.get(exc.errno) or exc.strerror})") from None
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.locked = True
        except BlockingIOError:
            raise AutomixError(f"{self.out} is in use by another automix run") from None
        except OSError:  # a file system without locks (some network mounts): go on unlocked
            pass

    # ------------------------------------------------------------------ during the run

    def path(self, name: str) -> Path:
        """Where the file ``name`` of the set is written."""
        return self.staging / name

    def submit(self, fn, /, *args, **kwargs):
        """``fn(*args, **kwargs)`` in the background (:mod:`automix.background`); the folder waits
        for it before the swap or the cleanup."""
        from . import background

        job = background.submit(fn, *args, **kwargs)
        self.jobs.append(job)
        return job

    def wait(self) -> None:
        """Every background job finished; the first failure re-raised."""
        for job in self.jobs:
            job.result()

    def commit(self) -> list[str]:
        """Swap the new files in; returns the names written (in the set's order)."""
        self.wait()
        new = [n for n in self.names if os.path.lexists(self.staging / n)]
        old_dir = self.staging / "old"
        moved_old: list[str] = []
        moved_new: list[str] = []
        with signals_held():
            try:
                for n in self.names:
                    if os.path.lexists(self.out / n):
                        os.rename(self.out / n, old_dir / n)
                        moved_old.append(n)
                for n in new:
                    os.rename(self.staging / n, self.out / n)
                    moved_new.append(n)
            except OSError as exc:
                for n in reversed(moved_new):
                    _try(os.rename, self.out / n, self.staging / n)
                for n in reversed(moved_old):
                    _try(os.rename, old_dir / n, self.out / n)
                raise AutomixError(f"{self.out}: cannot replace the files "
                                   f"({os_error_text(exc)}); the folder is as it was") from None
            self.committed = True
        return new

    # ------------------------------------------------------------------ every way out

    def __exit__(self, exc_type, exc, tb):
        text = self._text(exc) if isinstance(exc, OSError) else None
        self._close(failed=not self.committed)
        if text is not None:
            raise AutomixError(text) from None
        return False

    def _close(self, failed: bool) -> None:
        with signals_held():
            for job in self.jobs:  # a write still running would recreate what is removed
                try:
                    job.exception()
                except BaseException:
                    pass
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
                self.staging = None
            if failed:
                for p in reversed(self.created):  # deepest first; only if still empty
                    _try(os.rmdir, p)
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None

    def _text(self, exc: OSError) -> str:
        """The error with the staging path replaced by the file's place in OUT."""
        text = os_error_text(exc)
        if exc.filename is not None and self.staging is not None:
            text = text.replace(str(self.staging) + os.sep, str(self.out) + os.sep)
            text = re.sub(r"(^|/)\.([^/]+)\.[0-9a-f]{8}\.tmp\b", r"\1\2", text)  # atomic_path's
        return text


def _try(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass
