"""A registry of actions looked up by name, with composable views (prefixed, renamed,
filtered), as pydantic-ai's toolsets do."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from paraloom.protocols.actions import ActionKind, ActionSpec
from paraloom.runtime.context import Action

__all__ = ["ActionSet", "UnknownActionError"]


class UnknownActionError(KeyError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown action {self.name!r}; known actions: {', '.join(self.known) or '(none)'}"


class ActionSet:
    """Actions by unique name. Immutable: views and merges return new sets."""

    __slots__ = ("_actions",)

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        table: dict[str, Action] = {}
        for action in actions:
            name = action.spec.name
            if name in table:
                raise ValueError(f"duplicate action name {name!r}")
            table[name] = action
        self._actions: Mapping[str, Action] = table

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        return f"ActionSet({sorted(self._actions)})"

    @property
    def names(self) -> list[str]:
        return list(self._actions)

    def get(self, name: str) -> Action:
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownActionError(name, self._actions) from None

    def specs(self) -> list[ActionSpec]:
        return [a.spec for a in self._actions.values()]

    def of_kind(self, *kinds: ActionKind) -> ActionSet:
        return self.filtered(lambda a: a.spec.kind in kinds)

    def filtered(self, keep: Callable[[Action], bool]) -> ActionSet:
        return ActionSet(a for a in self._actions.values() if keep(a))

    def only(self, names: Iterable[str]) -> ActionSet:
        """The named actions (all must exist), in the given order."""
        return ActionSet(self.get(n) for n in names)

    def prefixed(self, prefix: str, sep: str = "_") -> ActionSet:
        from paraloom.tools.wrappers import renamed

        return ActionSet(renamed(a, f"{prefix}{sep}{a.spec.name}") for a in self)

    def renamed(self, mapping: Mapping[str, str]) -> ActionSet:
        from paraloom.tools.wrappers import renamed

        for old in mapping:
            self.get(old)
        return ActionSet(
            renamed(a, mapping[a.spec.name]) if a.spec.name in mapping else a for a in self
        )

    def __or__(self, other: ActionSet) -> ActionSet:
        return ActionSet([*self, *other])
