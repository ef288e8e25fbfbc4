"""Per-user generation limits: one user cannot queue thousands of generations (REQUIREMENTS §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lorapin.domain.errors import RateLimited
from lorapin.domain.limits import GenerationLimits, admit
from lorapin.services.generation_request import GenerationRequest
from tests.fakes import ManualClock
from tests.unit.conftest import Services

pytestmark = pytest.mark.unit
LIMITS = GenerationLimits(per_minute=3, in_flight=5)


def test_the_minute_window_and_the_in_flight_count_each_stop_a_request() -> None:
    at = datetime(2026, 12, 7, 1, 47, 40, tzinfo=UTC)
    assert admit(at, window=None, window_count=0, in_flight=0, limits=LIMITS).window_count == 1
    full = admit(at, window="2026-12-07T01:47", window_count=3, in_flight=0, limits=LIMITS)
    assert not full.allowed and full.retry_after_seconds == 20  # the next minute
    assert admit(at, window="2026-12-07T01:46", window_count=3, in_flight=0, limits=LIMITS).allowed  # a new minute
    busy = admit(at, window=None, window_count=0, in_flight=5, limits=LIMITS)
    assert not busy.allowed and busy.retry_after_seconds > 0


def test_over_the_rate_answers_429_and_writes_nothing(services: Services, clock: ManualClock) -> None:
    services.train()
    generations = services.runtime.generations(LIMITS)
    for n in range(3):
        generations.request(services.user, GenerationRequest(prompt=f"p{n}"))
    before = len(services.replicate.predictions)
    with pytest.raises(RateLimited) as limited:
        generations.request(services.user, GenerationRequest(prompt="one too many"))
    assert limited.value.status == 429 and 0 < int(limited.value.headers()["Retry-After"]) <= 60
    assert len(services.replicate.predictions) == before  # nothing asked of Replicate
    clock.advance(timedelta(minutes=1))
    assert generations.request(services.user, GenerationRequest(prompt="next minute")).status == "starting"


def test_generations_in_flight_are_counted_until_they_end(services: Services) -> None:
    services.train()
    generations = services.runtime.generations(GenerationLimits(per_minute=100, in_flight=2))
    first = generations.request(services.user, GenerationRequest(prompt="a"))
    generations.request(services.user, GenerationRequest(prompt="b"))
    with pytest.raises(RateLimited):
        generations.request(services.user, GenerationRequest(prompt="c"))
    finished = services.replicate.finish_prediction(str(first.replicate_prediction_id))
    assert generations.complete_prediction(finished, first.generation_id).value == "recorded"
    assert generations.complete_prediction(finished, first.generation_id).value == "duplicate"  # counted once
    assert generations.request(services.user, GenerationRequest(prompt="c")).status == "starting"
    model = services.repository.get_model(services.user)
    assert model is not None and model.generations_in_flight == 2


def test_one_users_limit_is_not_anothers(services: Services) -> None:
    services.train()
    other = f"{services.user}-other"
    services.train(other)
    generations = services.runtime.generations(LIMITS)
    for n in range(3):
        generations.request(services.user, GenerationRequest(prompt=f"p{n}"))
    assert generations.request(other, GenerationRequest(prompt="mine")).status == "starting"


def test_generations_ending_while_a_request_is_admitted_do_not_make_it_429(services: Services,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The admission's write was conditioned on the in-flight count being exactly as read: each of
    the user's predictions that ended meanwhile lost it the race, and after three a user well under
    the limits was answered 429. Only the limit matters for in-flight work."""
    services.train()
    generations = services.runtime.generations(GenerationLimits(per_minute=100, in_flight=5))
    running = [generations.request(services.user, GenerationRequest(prompt=f"p{n}")) for n in range(3)]
    read_model = services.repository.get_model

    def a_prediction_ends_after_each_read(user_id: str) -> object:
        model = read_model(user_id)
        if running:
            ended = running.pop()
            finished = services.replicate.finish_prediction(str(ended.replicate_prediction_id))
            generations.complete_prediction(finished, ended.generation_id)
        return model

    monkeypatch.setattr(services.repository, "get_model", a_prediction_ends_after_each_read)
    assert generations.request(services.user, GenerationRequest(prompt="admitted")).status == "starting"
    monkeypatch.undo()
    model = services.repository.get_model(services.user)
    assert model is not None and model.generations_in_flight == len(running) + 1  # no count drifted
