"""Try clients in order: the first that answers wins."""

from __future__ import annotations

from collections.abc import Callable

from paraloom.models.base import Completion, ModelClient, ModelError, ModelRequest

__all__ = ["FallbackModel"]


def _any_model_error(exc: ModelError) -> bool:
    return True


class FallbackModel:
    """Sends the request to ``clients`` in order, moving on when one raises a
    :class:`ModelError` accepted by ``when`` (default: any). If all fail, the last error
    is raised with the earlier ones added as notes."""

    def __init__(
        self, *clients: ModelClient, when: Callable[[ModelError], bool] = _any_model_error
    ) -> None:
        if not clients:
            raise ValueError("FallbackModel needs at least one client")
        self.clients = clients
        self.when = when

    async def complete(self, request: ModelRequest) -> Completion:
        errors: list[ModelError] = []
        for client in self.clients:
            try:
                return await client.complete(request)
            except ModelError as exc:
                if not self.when(exc):
                    raise
                errors.append(exc)
        last = errors[-1]
        for earlier in errors[:-1]:
            last.add_note(f"earlier fallback failed: {earlier}")
        raise last
