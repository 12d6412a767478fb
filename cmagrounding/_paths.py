"""Output paths checked before a command reads or computes anything (docs/security.md).

An output never replaces an input of the same command (``localize v.mp4 --html v.mp4`` used to
overwrite the video), two outputs never name one file, an output that must be a folder is not an
existing file, and the place an output goes is writable. Paths are compared after resolving
symbolic links and ``..`` (and by inode where both exist), so ``./v.mp4`` and a link to it count as
``v.mp4``. Every refusal is an :class:`~cmagrounding.errors.OutputPathError` naming the option and both paths.

Private: the command-line modules call :func:`check_outputs` / :func:`check_output_folder`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

from cmagrounding.errors import OutputPathError



def _key(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file (resolved paths, or one inode where both exist)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return _key(a) == _key(b)


def check_outputs(outputs: Mapping[str, str | os.PathLike[str] | None],
                  inputs: Mapping[str, str | os.PathLike[str] | None | Iterable[str | os.PathLike[str]]]) -> None:
    """Refuse an output (``{option: path}``) that is one of the input files (``{what: path or
    list of paths}``), another output's file, or an existing folder."""
    given = {k: v for k, v in outputs.items() if v is not None}
    flat: list[tuple[str, str | os.PathLike[str]]] = []
    for what, value in inputs.items():
        if value is None:
            continue
        if isinstance(value, (str, os.PathLike)):
            flat.append((what, value))
        else:
            flat.extend((what, v) for v in value)
    for option, out in given.items():
        for what, inp in flat:
            if os.path.isdir(inp) and not os.path.isdir(out):
                continue  # a file output beside an input folder's files is fine; the files themselves are listed
            if same_file(out, inp):
                raise OutputPathError(f"{option} {str(out)!r} is the {what} {str(inp)!r}: "
                                      "an output never replaces an input; choose another path")
        if os.path.isdir(out):
            raise OutputPathError(f"{option} {str(out)!r} is a folder; give a file path")
    names = list(given)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if same_file(given[a], given[b]):
                raise OutputPathError(f"{a} and {b} name the same file {str(given[a])!r}; "
                                      "each output needs its own path")


def check_output_folder(option: str, folder: str | os.PathLike[str], *,
                        inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> Path:
    """Refuse an output folder that is an existing file, an input file, or cannot be created or
    written by this user; returns it as a Path (not created)."""
    folder = Path(folder)
    for what, inp in (inputs or {}).items():
        if inp is not None and not os.path.isdir(inp) and same_file(folder, inp):
            raise OutputPathError(f"{option} {str(folder)!r} is the {what} {str(inp)!r}: "
                                  "an output never replaces an input")
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{option} {str(folder)!r} is an existing file, not a folder; "
                              "give a folder path (it is created if missing)")
    check_writable(option, folder, folder=True)
    return folder


def check_writable(option: str, path: str | os.PathLike[str], *, folder: bool = False) -> None:
    """Refuse ``path`` when its nearest existing folder (itself, for an existing ``folder``) is not
    writable by this user, or an existing file there is read-only."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    if not folder and path.is_file() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{option} {str(path)!r} is a read-only file")
    start = path if folder else path.parent
    existing = next((p for p in (start, *start.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {str(path)!r} cannot be written: the folder "
                              f"{str(existing)!r} is not writable by this user")
