"""Model selection for configured runs: the ``router:`` section as a
:class:`~paraloom.runtime.selection.ModelSelector`, and pinning of agents that name
their own ``model:``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from paraloom.config.load import LoadedConfig
from paraloom.runtime.selection import ModelSelector, Selection, SelectionRequest

__all__ = ["PerAgentSelector", "build_router"]


@dataclass(frozen=True, slots=True)
class PerAgentSelector:
    """Agents (and planners) listed in ``pinned`` always get their model; every other
    call is routed by ``router``."""

    router: ModelSelector
    pinned: Mapping[str, str]

    async def select(self, request: SelectionRequest) -> Selection:
        if request.agent is not None and request.agent in self.pinned:
            return Selection(model=self.pinned[request.agent], reason="configured model")
        return await self.router.select(request)


def build_router(loaded: LoadedConfig) -> ModelSelector:
    """The configured router (``router:`` section) as a model selector."""
    cfg = loaded.config.router
    assert cfg is not None
    try:
        from paraloom.routing import (
            Exploration,
            RouterConfigError,
            RouterSelector,
            load_router,
            router_from_config,
        )
    except ImportError as exc:  # pragma: no cover - routing is a core dependency
        raise loaded.error(("router",), f"routing is not available: {exc}") from None
    try:
        if cfg.kind == "trained":
            assert cfg.path is not None
            path = Path(cfg.path)
            router = load_router(path if path.is_absolute() else loaded.base_dir / path)
        else:
            router = router_from_config(
                {
                    "kind": cfg.kind,
                    "model": cfg.model,
                    "seed": cfg.seed,
                    "pacing": cfg.pacing or "share",
                }
            )
    except RouterConfigError as exc:
        where = ("router", "path") if cfg.kind == "trained" else ("router",)
        raise loaded.error(where, f"cannot build the router: {exc}", at_value=True) from None
    if cfg.knob is not None:
        router.knob = cfg.knob
    if cfg.pacing is not None:
        router.pacing = cfg.pacing
    if cfg.exploration is not None:
        router.exploration = Exploration(cfg.exploration, epsilon=cfg.epsilon)
    return RouterSelector(router)
