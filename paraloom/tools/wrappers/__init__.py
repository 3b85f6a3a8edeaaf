"""Composable action wrappers, one small file each."""

from paraloom.tools.wrappers.base import WrapperAction
from paraloom.tools.wrappers.limit import ConcurrencyLimitAction, with_concurrency_limit
from paraloom.tools.wrappers.renamed import RenamedAction, renamed
from paraloom.tools.wrappers.retry import RetryAction, retry_attempts, with_retry
from paraloom.tools.wrappers.timeout import TimeoutAction, invoke_with_timeout, with_timeout

__all__ = [
    "ConcurrencyLimitAction",
    "RenamedAction",
    "RetryAction",
    "TimeoutAction",
    "WrapperAction",
    "invoke_with_timeout",
    "renamed",
    "retry_attempts",
    "with_concurrency_limit",
    "with_retry",
    "with_timeout",
]
