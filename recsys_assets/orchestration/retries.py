"""Retry what may pass by itself (a throttled LLM, a locked store), fail fast on everything else.

Assets that touch the LLM or MLflow carry a `RetryPolicy`; inside them, `retry_only_on` turns
any other error (bad data, a bug) into `dg.Failure(allow_retries=False)` so the run fails at once
with the reason instead of waiting through backoff for something that cannot change.
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from sqlalchemy.exc import OperationalError

# Network trouble and stores locked by another writer.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    duckdb.IOException,
    OperationalError,
)


def backoff_policy(max_retries: int, delay: float) -> dg.RetryPolicy:
    return dg.RetryPolicy(
        max_retries=max_retries,
        delay=delay,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


@contextmanager
def retry_only_on(*transient: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except dg.Failure:
        raise
    except (*INFRASTRUCTURE_ERRORS, *transient):
        raise
    except Exception as exc:
        raise dg.Failure(
            description=f"{type(exc).__name__}: {exc} (not retried: retrying cannot fix this)",
            allow_retries=False,
        ) from exc


def fail_fast_unless(
    *transient: type[BaseException] | Callable[[], tuple[type[BaseException], ...]],
):
    """Decorator form of `retry_only_on` for a whole asset body.

    An entry may be a zero-argument callable returning exception types, resolved when the asset
    runs: naming MLflow's exception that way keeps mlflow out of every process that only loads
    the definitions (webserver, daemon, code servers, `recsys materialize`)."""

    def resolve() -> tuple[type[BaseException], ...]:
        types: list[type[BaseException]] = []
        for entry in transient:
            if isinstance(entry, type):
                types.append(entry)
            else:
                types.extend(entry())
        return tuple(types)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with retry_only_on(*resolve()):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
