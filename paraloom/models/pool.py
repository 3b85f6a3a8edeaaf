"""The models a run may use, with their prices, and the client that serves each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

from paraloom.models.base import ModelClient
from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ModelDescriptor

__all__ = ["ModelPool", "UnknownModelError"]


class UnknownModelError(KeyError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; pool has: {', '.join(self.known) or '(none)'}"


class ModelPool:
    """Model descriptors by name, each mapped to the :class:`ModelClient` serving it.

    A model's client is, in order: the one given to :meth:`add`, the one registered for
    its ``provider`` in ``providers``, or ``client`` (the default). A model no client
    serves is rejected when added.
    """

    def __init__(
        self,
        models: Iterable[ModelDescriptor] = (),
        *,
        client: ModelClient | None = None,
        providers: Mapping[str, ModelClient] | None = None,
    ) -> None:
        self._default = client
        self._providers = dict(providers or {})
        self._models: dict[str, tuple[ModelDescriptor, ModelClient]] = {}
        for model in models:
            self.add(model)

    def add(self, model: ModelDescriptor, client: ModelClient | None = None) -> ModelPool:
        if model.name in self._models:
            raise ValueError(f"duplicate model name {model.name!r}")
        chosen = client or self._providers.get(model.provider) or self._default
        if chosen is None:
            raise ValueError(
                f"no client serves model {model.name!r} (provider {model.provider!r}); "
                "pass client=… or providers={…}"
            )
        self._models[model.name] = (model, chosen)
        return self

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[ModelDescriptor]:
        return (d for d, _ in self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"ModelPool({list(self._models)})"

    @property
    def names(self) -> list[str]:
        return list(self._models)

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [d for d, _ in self._models.values()]

    def descriptor(self, name: str) -> ModelDescriptor:
        return self._entry(name)[0]

    def client(self, name: str) -> ModelClient:
        return self._entry(name)[1]

    def cost(self, name: str, usage: TokenUsage) -> Decimal:
        """Dollars for ``usage`` on model ``name`` (exact Decimal)."""
        return self.descriptor(name).cost(usage.input_tokens, usage.output_tokens)

    def _entry(self, name: str) -> tuple[ModelDescriptor, ModelClient]:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModelError(name, self._models) from None
