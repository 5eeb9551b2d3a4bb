"""Run folders: checked for writability before any work, and locked while a run writes into them.

    with run_dir(out, resume=args.resume, interrupted=describe) as folder:
        ...  # the run; nothing else can write into `folder` meanwhile

The lock is ``OUT/.lock``: an exclusive ``flock`` on it (released by the kernel when the holder dies, however it
dies) and, inside, the holder's pid, host and start time for the messages. A second run into the same folder
refuses at once with one line naming the holder; only when no live process holds the folder, and the folder
holds an interrupted run (`interrupted` says so), does the refusal suggest ``--resume``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from astrosnn.errors import AstrosnnError

LOCK = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]


class RunDirError(AstrosnnError):
    """The run folder cannot be used: not a folder, not writable, or in use by another run."""


class RunDirBusy(RunDirError):
    """Another live process holds the run folder's lock."""


def check_writable(out: str | Path) -> Path:
    """Create `out` if needed and make sure files can be written in it; one-line RunDirError otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder (--out must name a folder)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{out}: {parent} is a file, not a folder")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"{out}: cannot create the folder ({e.strerror or e})") from None
    probe = out / f".write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunDirError(f"{out}: the folder is not writable ({e.strerror or e})") from None
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def read_lock(out: str | Path) -> dict | None:
    """The holder recorded in OUT/.lock ({pid, host, started}), or None when the file is absent or empty."""
    try:
        text = (Path(out) / LOCK).read_text(encoding="utf-8")
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    pid, host, started = info.get("pid"), info.get("host"), info.get("started")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    when = f" (started {started})" if started else ""
    return f"process {pid}{where}{when}"


def check_not_busy(out: str | Path) -> None:
    """Raise RunDirBusy when a live process holds OUT's lock (a quick test; `run_dir` is the real lock)."""
    path = Path(out) / LOCK
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise RunDirBusy(f"{out} is in use by {_describe(read_lock(out))}: wait for it to end, or use another "
                         "--out") from None
    finally:
        os.close(fd)


@contextmanager
def lock_run_dir(out: str | Path) -> Iterator[dict | None]:
    """Hold OUT/.lock for the duration; yields the previous holder's record when it died holding it (else None).

    Raises RunDirBusy naming the holder when a live process holds it.
    """
    out = Path(out)
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise RunDirError(f"{out}: cannot create the lock file {LOCK} ({e.strerror or e})") from None
    try:
        previous = read_lock(out)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(f"{path}: cannot be locked ({e.strerror or e})") from None
                raise RunDirBusy(f"{out} is in use by {_describe(previous)}: wait for it to end, or use another "
                                 "--out") from None
        elif previous and previous.get("host") == socket.gethostname() and _pid_alive(int(previous.get("pid", -1))):
            raise RunDirBusy(f"{out} is in use by {_describe(previous)}: wait for it to end, or use another --out")
        stale = previous if previous and previous.get("pid") != os.getpid() else None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield stale
        finally:
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds the folder
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def run_dir(
    out: str | Path,
    *,
    resume: bool = False,
    interrupted: Callable[[Path], str | None] | None = None,
    how: str = "add --resume to continue it",
) -> Iterator[Path]:
    """Check `out` is a writable folder, lock it, and (fresh runs) refuse a folder holding an interrupted run.

    `interrupted(out)` describes the interrupted run in `out` (e.g. "step 20 of 40"), or returns None. It is asked
    only once the lock is held, so the resume advice is given only when no live process runs in the folder.
    """
    folder = check_writable(out)
    with lock_run_dir(folder) as stale:
        if not resume and interrupted is not None:
            what = interrupted(folder)
            if what:
                ended = f"; {_describe(stale)} ended without finishing it" if stale else ""
                raise RunDirError(f"{folder} holds an interrupted run ({what}{ended}): {how}, or delete that "
                                  "folder to start over")
        yield folder


__all__ = ["LOCK", "RunDirBusy", "RunDirError", "check_not_busy", "check_writable", "lock_run_dir", "read_lock", "run_dir"]
