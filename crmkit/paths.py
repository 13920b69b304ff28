"""Files a configuration names stay inside its project (issue 22 item 2).

A mapping (or a rules file, a dedupe rules file, a rollout plan) that names a path
(``path:``, a ``sqlite:///`` URL, ``validate:``, ``dedupe:``, ``decisions:``, a module under
``imports:``) may only reach files inside its **project**, symlinks resolved:

* the project root: the nearest folder, from the configuration file's own folder upwards,
  that holds ``crmkit.yaml``, ``pyproject.toml`` or ``.git`` (never the home folder or the
  file system's root: a home folder under git is not a project); without one, the
  configuration file's folder;
* plus every folder the person running crmkit passes with ``--allow-path DIR``.

A configuration cannot widen this itself: a hostile mapping would allow itself.  The
allowed folders are the ones set by :func:`allow_paths` (the CLI's ``--allow-path``).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path

#: files whose folder is a project root
PROJECT_MARKERS = ("crmkit.yaml", "pyproject.toml", ".git")

_EXTRA: ContextVar[tuple[Path, ...]] = ContextVar("crmkit_allowed_paths", default=())


def how(folder: Path) -> str:
    return f"move it into the project, or pass --allow-path {folder} to allow its folder"


class PathNotAllowed(ValueError):
    """A configuration names a file outside its project and the folders passed with --allow-path."""


def allow_paths(dirs: Iterable[str | Path]) -> None:
    """Folders beyond the project that configurations may name (``--allow-path``), for this process."""
    _EXTRA.set(tuple(Path(d).expanduser().resolve() for d in dirs))


def allowed_extra() -> tuple[Path, ...]:
    return _EXTRA.get()


def project_root(folder: Path) -> Path:
    """The project a configuration in ``folder`` belongs to (see the module's docstring)."""
    folder = folder.resolve()
    stop = {Path.home().resolve(), Path(folder.anchor)}
    for d in (folder, *folder.parents):
        if d in stop:
            break
        if any((d / m).exists() for m in PROJECT_MARKERS):
            return d
    return folder


def roots(base: Path | None) -> tuple[Path, ...]:
    """The folders a configuration whose folder is ``base`` may name files in."""
    own = project_root(base if base is not None else Path.cwd())
    return (own, *allowed_extra())


def inside(path: Path, allowed: Iterable[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in allowed)


def confine(path: str | Path, base: Path | None) -> Path:
    """``path`` (relative to ``base``), resolved; :class:`PathNotAllowed` if it is outside the allowed roots.

    ``base`` None means no configuration file names the path (a command-line argument, a
    model built in code): the person gave it, and it is only resolved.
    """
    p = Path(path).expanduser()
    full = (p if p.is_absolute() or base is None else Path(base) / p).resolve()
    if base is None:
        return full
    allowed = roots(base)
    if not inside(full, allowed):
        where = " or ".join(str(r) for r in allowed)
        raise PathNotAllowed(f"{path} is outside the project ({where}): {how(full.parent)}")
    return full


def module_allowed(module: str, base: Path | None) -> None:
    """A module under ``imports:`` must live in the project (or an allowed folder) or be installed.

    Installed means in the interpreter's site-packages or standard library; a module found
    only through the current directory or PYTHONPATH outside the project is refused.
    """
    import sys
    from importlib.util import find_spec

    top = module.split(".")[0]
    if module in sys.modules:
        return  # already imported: importing it again reads and runs nothing
    try:
        spec = find_spec(top)
    except (ImportError, ValueError):
        return  # the import itself reports it
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return
    origin = Path(spec.origin).resolve()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    installed = {Path(p).resolve() for p in (sysconfig.get_paths().get(k) for k in keys) if p}
    if not inside(origin, (*roots(base), *installed)):
        raise PathNotAllowed(f"module {module} ({origin}) is outside the project: {how(origin.parent)}")
