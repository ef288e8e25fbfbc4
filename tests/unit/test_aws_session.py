"""Every AWS client of a function comes from one botocore session, and every table talks through
one DynamoDB client: a new session reads the endpoint rules and service models again (~35 ms of a
first request each on python3.12), and PynamoDB's default is a session per table."""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
import pytest

from lorapin.adapters import aws, tables
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import ALL_TABLES
from lorapin.runtime import Runtime


@pytest.fixture
def fresh(in_process_aws: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, list[botocore.session.Session]]:
    """A runtime as at a cold start, and every botocore session made from here on."""
    from aws_lambda_powertools.utilities import parameters

    aws.forget_session()
    tables.forget_connections()
    parameters.clear_caches()
    made: list[botocore.session.Session] = []
    original = botocore.session.Session.__init__

    def counted(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "__init__", counted)
    runtime = Runtime(Settings.from_env(in_process_aws.function_env["TrainingApiFunction"]))
    return runtime, made


def test_a_first_request_makes_one_session_for_every_client(fresh: tuple[Runtime, list[Any]]) -> None:
    runtime, made = fresh
    repository = runtime.repository
    assert repository.get_model("nobody") is None  # ModelItem
    assert repository.get_training("trn_none") is None  # TrainingItem
    assert repository.get_generation("gen_none") is None  # GenerationItem
    assert runtime.media.head("users/nobody/uploads/none.jpg") is None  # S3
    runtime.publisher.publish_outbox({"detail_type": "SessionProbe", "detail": {}})  # EventBridge
    assert runtime.secrets.api_token  # Secrets Manager, through Powertools
    assert len(made) == 1


def test_every_table_and_the_repositorys_transactions_share_one_dynamodb_client(
        fresh: tuple[Runtime, list[Any]]) -> None:
    runtime, _ = fresh
    repository = runtime.repository
    repository.get_model("nobody")
    connections = {table._get_connection().connection for table in ALL_TABLES}
    assert connections == {repository._connection}
    assert repository._connection.client is next(iter(connections)).client


def test_tables_reached_first_from_several_threads_get_the_one_connection(
        fresh: tuple[Runtime, list[Any]]) -> None:
    runtime, made = fresh
    repository = runtime.repository
    start = threading.Barrier(len(ALL_TABLES))
    failures: list[BaseException] = []

    def first_use(table: Any) -> None:
        start.wait()
        try:
            table._get_connection().connection.client  # noqa: B018  (the client is made on first use)
        except BaseException as exc:  # reported below, from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=first_use, args=(table,)) for table in ALL_TABLES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert {table._get_connection().connection for table in ALL_TABLES} == {repository._connection}
    assert len(made) == 1
