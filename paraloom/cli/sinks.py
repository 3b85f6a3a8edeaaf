"""What the CLI attaches to the runs it starts (``paraloom run``, ``resume``, ``mcp
serve``): the run store, the tracing listener, and whether content is captured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import JsonValue

from paraloom.config.load import LoadedConfig
from paraloom.protocols.events import Event

if TYPE_CHECKING:
    from paraloom.store import RunStore

__all__ = ["SinkError", "Sinks", "capture_setting", "open_sinks"]

Listener = Callable[[Event], None]


class SinkError(Exception):
    """A store or tracing option that cannot be honoured (the message names the option)."""


@dataclass(slots=True)
class Sinks:
    listeners: list[Listener] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    store: RunStore | None = None
    capture_content: bool = False
    notes: list[str] = field(default_factory=list)
    """One-line warnings for stderr (e.g. the tracing collector is not reachable)."""

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()
        if self.store is not None:
            self.store.close()


def capture_setting(loaded: LoadedConfig, flag: bool) -> bool:
    """Content capture: ``--capture-content``, else the file's ``tracing.capture_content``,
    else ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""
    from paraloom.tracing.content import capture_from_env

    if flag:
        return True
    configured = loaded.config.tracing.capture_content
    return capture_from_env() if configured is None else configured


def open_sinks(
    loaded: LoadedConfig,
    *,
    trace: str | None,
    store_path: str | None,
    no_store: bool,
    capture_flag: bool,
    metadata: dict[str, JsonValue],
    session_id: str | None = None,
) -> Sinks:
    """Open the run store (unless ``no_store``; ``store: {redact: true}`` in the file
    scrubs what it records) and the tracing listener for ``trace``. A tracing collector
    that does not answer is one note, not a run that waits for it at exit."""
    sinks = Sinks(capture_content=capture_setting(loaded, capture_flag))
    if not no_store:
        from paraloom.store import RunStore, StoreError

        try:
            sinks.store = RunStore(
                store_path,
                redact=loaded.config.store.redact,
                synchronous=loaded.config.store.synchronous,
            )
        except StoreError as exc:
            from paraloom.cli.app import _store_where

            raise SinkError(
                f"{_store_where(store_path)}: cannot open the run store: {exc}"
            ) from None
        files = metadata.get("files")
        source = str(files[0]) if isinstance(files, list) and files else None
        sinks.listeners.append(sinks.store.listener(source=source, metadata=metadata))
    if trace is not None:
        from paraloom.tracing import parse_target, tracing_listener_for
        from paraloom.tracing.setup import reachable

        try:
            target = parse_target(trace)
            if not reachable(target):
                sinks.notes.append(
                    f"--trace {trace}: nothing listens at {target.endpoint}"
                    + (" (start Phoenix with: phoenix serve)" if target.kind == "phoenix" else "")
                    + "; this run is not traced"
                )
                return sinks
            if target.kind == "phoenix":
                _teach_phoenix(loaded, target.endpoint or "", sinks)
            listener, shutdown = tracing_listener_for(
                trace, capture_content=sinks.capture_content, session_id=session_id
            )
        except (ValueError, ImportError) as exc:
            sinks.close()
            raise SinkError(f"--trace {trace!r}: {exc}") from None
        sinks.listeners.append(listener)
        sinks.closers.append(shutdown)
    return sinks


def _teach_phoenix(loaded: LoadedConfig, endpoint: str, sinks: Sinks) -> None:
    """Give Phoenix the prices of pool models it does not price (else it shows $0 for
    them); after registering any, wait once for Phoenix to load them."""
    import os
    import time

    import httpx

    from paraloom.config.build import model_descriptors
    from paraloom.tracing.phoenix_prices import (
        PHOENIX_PRICE_REFRESH_S,
        PhoenixPriceError,
        register_prices,
    )

    try:
        added = register_prices(
            endpoint,
            model_descriptors(loaded.config).values(),
            api_key=os.environ.get("PHOENIX_API_KEY"),
        )
    except (PhoenixPriceError, httpx.HTTPError, ValueError, KeyError) as exc:
        sinks.notes.append(f"Phoenix was not given paraloom's prices ({exc}); costs may show $0")
        return
    if added:
        time.sleep(PHOENIX_PRICE_REFRESH_S)  # Phoenix reloads prices every 5 s
