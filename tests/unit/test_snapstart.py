"""SnapStart (template parameter `SnapStart`): what a snapshot froze is rebuilt after a restore."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from lorapin.adapters.tables import ModelItem
from lorapin.runtime import Runtime, _register_after_restore
from tests.unit.conftest import Services

pytestmark = pytest.mark.unit


def test_a_restore_rebuilds_clients_and_rereads_secrets(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = services.runtime
    repository, media = runtime.repository, runtime.media
    assert runtime.repository.get_model(services.user) is None  # a table connection is open
    table_connection = ModelItem._connection
    reads: list[str] = []
    from aws_lambda_powertools.utilities import parameters

    original = parameters.get_secret

    def counted(name: str, **kwargs: Any) -> Any:
        reads.append(name)
        return original(name, **kwargs)

    monkeypatch.setattr(parameters, "get_secret", counted)
    _ = runtime.secrets  # cached: no read
    cached_reads = len(reads)
    runtime.refresh_after_restore()
    assert runtime.repository is not repository and runtime.media is not media
    assert ModelItem._connection is None or ModelItem._connection is not table_connection
    assert runtime.repository.get_model(services.user) is None  # and they work
    _ = runtime.secrets
    assert len(reads) == cached_reads + 1  # the secret is read again, not taken from the snapshot


def test_a_restore_makes_again_what_the_init_had_made(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepare` made the clients at init; a restore drops them (their connections and credentials
    belong to the snapshot) and makes them again before the first request, on a new session."""
    import botocore.session

    runtime = services.runtime
    runtime.prepare("dynamodb", "s3")
    media = runtime.media
    made: list[object] = []
    original = botocore.session.Session.__init__

    def counted(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "__init__", counted)
    runtime.refresh_after_restore()
    assert len(made) == 1  # one new session, made by the hook itself
    assert "media" in runtime.__dict__ and runtime.media is not media  # S3's client: made again, not on first use
    assert runtime.repository.get_model(services.user) is None
    assert len(made) == 1  # the request made none


def test_the_hook_is_registered_only_where_the_runtime_provides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime.__new__(Runtime)
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    _register_after_restore(runtime)  # no library outside Lambda: nothing to do, no error
    registered: list[Callable[[], None]] = []
    library = types.ModuleType("snapshot_restore_py")
    library.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", library)
    _register_after_restore(runtime)
    assert registered == [runtime.refresh_after_restore]
