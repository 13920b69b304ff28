"""One registry shape for every extension point.

Source kinds, transforms, normalisers, similarity methods, validation checks, survivorship
rules, rollout gates and load-test personas each keep a :class:`Registry` of their own::

    TRANSFORMS: Registry[TransformFactory] = Registry("transform")

    @TRANSFORMS.register("upper", summary="upper-case text")
    def upper(args): ...

Adding one is that one decorated definition in one module.  ``get`` of an unknown name
raises :class:`UnknownName`, a ``ValueError`` whose message lists the known names, so
config loaders turn it into ``file:line: ...`` like any other validation error.  The docs
tables are generated from :meth:`Registry.rows` (``crmkit.docgen``), and a test fails when
a page drifts from its registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name that no entry of a registry has."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item: its name, the item itself, a one-line summary for the docs."""

    name: str
    item: T
    summary: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)


class Registry(Generic[T]):
    """Named items of one kind, registered once, looked up by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, summary: str = "", tags: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name", summary="...")``.  A name registers once."""

        def add(item: T) -> T:
            self.add(name, item, summary=summary, tags=tags)
            return item

        return add

    def add(self, name: str, item: T, *, summary: str = "", tags: tuple[str, ...] = ()) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        text = summary or _first_line(getattr(item, "__doc__", None))
        self._entries[name] = Entry(name, item, text, frozenset(tags))

    def remove(self, name: str) -> None:
        """Take ``name`` out again (a test's or a plugin's own entry); an unknown name raises UnknownName."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        try:
            return self._entries[name].item
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})") from None

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self, tag: str | None = None) -> list[str]:
        return sorted(n for n, e in self._entries.items() if tag is None or tag in e.tags)

    def entries(self) -> list[Entry[T]]:
        """Every entry in the order it was registered (names() sorts)."""
        return list(self._entries.values())

    def rows(self) -> list[tuple[str, str]]:
        """``(name, summary)`` sorted by name: what a docs table lists."""
        return [(n, self._entries[n].summary) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()
