"""One botocore session for every AWS client the process makes.

A botocore session reads the endpoint rules and each service's model the first time one of its
clients needs them: on python3.12 the first client of a session takes ~35 ms, each further client
2 to 8 ms. boto3's default session, Powertools' parameter providers and every PynamoDB connection
(one per table) each had their own, so a function's first request paid the ~35 ms again for each:
~270 ms of clients for the generation function's first `POST /generations` (its tables, its
secret and S3; README, Performance). Every client lorapin makes now comes from this session:
botocore clients (`client`), Powertools' secrets and parameters and PynamoDB's one connection
(`SharedSessionConnection`, `lorapin.adapters.tables.connection`).

The clients are botocore's, not boto3's: a boto3 client is the same client, except that boto3 gives
an S3 client its transfer manager (`upload_file` and the like, which lorapin does not call) and
imports s3transfer, multiprocessing and concurrent.futures for it, ~15 ms of a cold start.

Making clients from one botocore session is not thread-safe (PynamoDB gives each thread a session
of its own for that reason), so `create_client` holds a lock here. Clients themselves are
thread-safe, and are shared.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import botocore.session
from pynamodb.connection import Connection


class LockedSession(botocore.session.Session):
    """A botocore session whose clients are made one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._creating = threading.Lock()

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        with self._creating:
            return super().create_client(*args, **kwargs)


_making = threading.Lock()  # two threads' first clients must not make two sessions
_shared: LockedSession | None = None


def botocore_session() -> LockedSession:
    global _shared
    with _making:
        if _shared is None:
            _shared = LockedSession()
        return _shared


def client(service: str, region: str, **options: Any) -> Any:
    """A client of the shared session (`options`: botocore's `create_client`'s, e.g. `config`)."""
    return botocore_session().create_client(service, region_name=region, **options)


class SharedSessionConnection(Connection):
    """PynamoDB's connection, making its DynamoDB client from the shared session."""

    @property
    def session(self) -> botocore.session.Session:
        return botocore_session()


def share_with_powertools(kind: Literal["secrets", "ssm"], region: str) -> None:
    """Powertools' `get_secret`/`get_parameter` keep one provider of each kind per process
    (`DEFAULT_PROVIDERS`, emptied by `parameters.clear_caches()`), each on a boto3 session of its
    own; put one there whose client comes from the shared session, unless there is one already."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    if kind not in DEFAULT_PROVIDERS:
        if kind == "secrets":
            DEFAULT_PROVIDERS[kind] = SecretsProvider(boto3_client=client("secretsmanager", region))
        else:
            DEFAULT_PROVIDERS[kind] = SSMProvider(boto3_client=client("ssm", region))


def forget_session() -> None:
    """Drop the session: the next client starts a new one (a SnapStart restore, tests that move
    the endpoint). Clients already made keep working."""
    global _shared
    with _making:
        _shared = None
