"""Atomic file writes: a temporary file in the target's folder, renamed over the target.

Readers never see a half-written file, a crash leaves the old file in place, and the new file gets
the permissions a plain ``open(path, "w")`` would give (``mkstemp`` alone would leave it 0600).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _naming_target(exc: OSError, path: Path) -> OSError:
    """``exc`` re-worded to name ``path`` (not the temporary file), same errno and OSError subclass
    (a full disk, a read-only folder: the user should learn which output could not be written)."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, f"cannot write {str(path)!r}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    An OSError with an errno (no space left, permission denied, ...) is re-raised naming ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming_target(exc, path) from exc
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            new = _naming_target(exc, path)
            if new is not exc:
                raise new from exc
        raise
