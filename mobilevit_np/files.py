"""Writing a user's files: all or nothing, and never over something that is not ours to replace.

    write_atomically("model.safetensors", lambda tmp: save(tmp), overwrite=False, sources=["pytorch_model.bin"])

The data goes to a temporary file beside the destination, which is then linked into place
(exclusive: if the destination appeared meanwhile, say from a second run, the link fails
and nothing is replaced) or, with overwrite, renamed over it. So an interrupted or failed
write leaves the destination as it was and no temporary or empty file behind. Even with
overwrite, a destination that is not a regular file (a device such as /dev/null, a folder,
a pipe, a symbolic link) or that is one of the run's own inputs is refused.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterable

# What os.link raises where a filesystem has no hard links (FAT, some network mounts).
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def check_destination(path: str, overwrite: bool, sources: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse to write `path` over an existing file (unless overwrite), a non-regular file, or an input."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileNotFoundError(f"cannot write {path}: the folder {os.path.dirname(path)} does not exist")
    if not os.path.lexists(path):
        return
    for source in sources:
        if os.path.exists(source) and os.path.samefile(path, source):
            same = (
                "" if os.path.abspath(path) == os.path.abspath(source) else f" (the same file as {os.fspath(source)})"
            )
            raise FileExistsError(f"{path} is an input of this run{same}; write the output elsewhere")
    if not stat.S_ISREG(os.lstat(path).st_mode):
        kind = "a folder" if os.path.isdir(path) else "not a regular file (a device, pipe or link)"
        raise FileExistsError(f"{path} exists and is {kind}; it is never replaced, not even with --force")
    if not overwrite:
        raise FileExistsError(f"{path} already exists (use --force / overwrite=True to replace it)")


def write_atomically(
    path: str | os.PathLike,
    write: Callable[[str], None],
    overwrite: bool = False,
    sources: Iterable[str | os.PathLike] = (),
) -> None:
    """Call write(temporary path), then put that file at `path`; on any failure `path` is untouched.

    The new file gets the permissions any new file gets (0o666 minus the umask). An OSError
    names `path`, never the temporary file.
    """
    path = os.fspath(path)
    sources = list(sources)
    check_destination(path, overwrite, sources)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 & ~umask, like open(path, "w")
        mode = os.stat(tmp).st_mode & 0o777
        write(tmp)
        os.chmod(tmp, mode)  # writers that replace the file (safetensors gives 0o600) keep the usual mode
        if overwrite:
            check_destination(path, overwrite, sources)  # it may have become a device or a link meanwhile
            os.replace(tmp, path)
        else:
            _link_exclusively(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def _link_exclusively(tmp: str, path: str) -> None:
    """Give `tmp` the name `path`, failing if `path` exists by now (the check and the write cannot race)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while it was being written (another run?); it was left as it is"
        ) from None
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # claim the name, exclusively
        try:
            os.replace(tmp, path)
        except BaseException:
            os.remove(path)  # the empty claim, not a user's file
            raise
