"""`lorapin.cold_start`: the init runs without the cyclic GC, which is always resumed, and only a
Lambda execution environment freezes what the init allocated."""

from __future__ import annotations

import gc

import pytest

from lorapin.cold_start import collecting_later

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _collector_restored() -> object:
    yield
    gc.unfreeze()
    gc.enable()


def test_the_collector_is_paused_during_the_init_and_resumed_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    frozen_before = gc.get_freeze_count()
    with collecting_later():
        assert not gc.isenabled()
        allocated = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before  # tests and the local stack share one process
    assert len(allocated) == 1000


def test_a_lambda_environment_freezes_what_the_init_allocated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    with collecting_later():
        allocated = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(allocated)


def test_a_failing_init_still_resumes_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    with pytest.raises(RuntimeError), collecting_later():
        raise RuntimeError("settings invalid")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    gc.disable()
    with collecting_later():
        pass
    assert not gc.isenabled()
