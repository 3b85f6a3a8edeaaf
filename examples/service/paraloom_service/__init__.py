"""paraloom embedded in a web service: a FastAPI app over a run manager."""

from paraloom_service.app import RunStatusView, StartRun, create_app, sse_frame
from paraloom_service.runs import RunManager, RunRecord, UnknownNameError

__all__ = [
    "RunManager",
    "RunRecord",
    "RunStatusView",
    "StartRun",
    "UnknownNameError",
    "create_app",
    "sse_frame",
]
