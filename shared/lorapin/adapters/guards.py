"""Conditional writes: every guard (I1, I2, the outbox lease, "record once") is a DynamoDB
condition, and a write that loses its condition is an answer, not a failure.

Two ways to run one: `guarded(write)` when losing means "someone else moved the state, re-read
and decide again" (`GuardRejected`), and `write_if(write)` when losing is a fine outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

T = TypeVar("T")

CONDITION_FAILED = "ConditionalCheckFailedException"


class GuardRejected(Exception):
    """A conditional write lost: the stored state changed since it was read."""


def condition_failed(exc: BaseException) -> bool:
    """Whether a PynamoDB write lost its condition (a guard), as opposed to failing."""
    if isinstance(exc, TransactWriteError):
        return any(condition_failed_at(exc, index) for index in range(len(exc.cancellation_reasons)))
    return getattr(exc, "cause_response_code", None) == CONDITION_FAILED


def condition_failed_at(exc: TransactWriteError, index: int) -> bool:
    """Whether the `index`-th write of a canceled transaction is the one whose condition failed."""
    reasons = exc.cancellation_reasons
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code in (CONDITION_FAILED, "ConditionalCheckFailed")


@contextlib.contextmanager
def condition_as_guard_rejected() -> Iterator[None]:
    """Inside: a lost condition raises `GuardRejected`; any other failure propagates as it is."""
    try:
        yield
    except PynamoDBException as exc:
        if condition_failed(exc):
            raise GuardRejected(str(exc)) from exc
        raise


@contextlib.contextmanager
def guarded_transaction(connection: Connection) -> Iterator[TransactWrite]:
    """A `TransactWrite` whose lost condition raises `GuardRejected`: the whole transaction is undone."""
    with condition_as_guard_rejected(), TransactWrite(connection=connection) as transaction:
        yield transaction


def guarded(write: Callable[[], T]) -> T:
    """Run a conditional write; `GuardRejected` when its condition does not hold."""
    with condition_as_guard_rejected():
        return write()


def write_if(write: Callable[[], Any]) -> bool:
    """Run a conditional write; whether its condition held. A lost condition is not an error."""
    try:
        guarded(write)
    except GuardRejected:
        return False
    return True
