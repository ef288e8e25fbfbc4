"""Hypothesis-generated webhook deliveries and API bodies, run through the handlers in-process
(API Gateway HTTP API payload 2.0 events, moto in-process with every resource of template.yaml).

Whatever arrives: never a 5xx, every rejection is the REQUIREMENTS §4 error shape with an UPPER_SNAKE code, and a
rejected input writes nothing (I6): the DynamoDB tables, the bucket and the event queues read back
exactly as before.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from infra.local.apigw import http_api_event
from infra.local.aws_stack import ACCOUNT_ID, LocalAwsStack
from infra.local.functions import Handler, LocalContext, load_handler
from infra.local.template import Template
from lorapin.adapters.repository import Repository, TrainingStarts
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import PhotoSetItem, TrainingItem
from lorapin.http.webhook_signature import sign_webhook
from tests.fixtures import UNIT_SIGNING_SECRET

settings.register_profile(
    "lorapin-fuzz", max_examples=int(os.environ.get("LORAPIN_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
PROFILE = settings.get_profile("lorapin-fuzz")
FUZZ = settings(PROFILE)

ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
HEX64 = re.compile(r"[0-9a-f]{64}")
TABLES = ("ModelsTable", "TrainingsTable", "VersionsTable", "GenerationsTable")
FUNCTIONS = ("TrainingApiFunction", "GenerationFunction", "ReplicateWebhookFunction")

# Every route gets bodies with every content type. An empty body sent as multipart/form-data comes
# without base64 (there is nothing to encode), and Powertools warns REST API users about binary media
# types for it; the request is refused all the same.
pytestmark = pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding:UserWarning")


# --- the world: handlers in-process, and what they wrote ------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    text: str
    crash: str | None = None


@dataclass
class World:
    stack: LocalAwsStack
    handlers: dict[str, Handler]
    routes: dict[tuple[str, str], str]
    s3_calls: list[str] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(self.stack.function_env["ReplicateWebhookFunction"])

    @cached_property
    def _repository(self) -> Repository:
        return Repository(self.settings)  # once: binding the tables again would drop every cached client

    def repository(self) -> Repository:
        return self._repository

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.stack.client(service)
        return self._clients[service]

    def invoke(self, event: dict[str, Any]) -> Answer:
        """What API Gateway would answer: the handler's response, or 500 when the handler raises."""
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
        function_id = self.routes[(method, path)]
        self.s3_calls.clear()
        try:
            response = self.handlers[function_id](event, LocalContext(function_id))
        except Exception as exc:  # Lambda's unhandled error: API Gateway's 500
            return Answer(500, None, "", crash=f"{type(exc).__name__}: {str(exc)[:300]}")
        assert isinstance(response, dict), response
        text = response.get("body") or ""
        if response.get("isBase64Encoded"):
            text = base64.b64decode(text).decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return Answer(int(response["statusCode"]), body, text)

    def api(self, method: str, path: str, *, user: str | None, body: str | bytes | None,
            content_type: str | None = "application/json") -> Answer:
        headers = {"content-type": content_type} if content_type else {}
        claims = {"sub": user, "iss": "https://issuer.example", "aud": "lorapin"} if user else None
        return self.invoke(http_api_event(method, path, body=body, headers=headers, claims=claims))

    def webhook(self, kind: str, raw: str, *, query: str = "", webhook_id: str | None = None,
                at: int | None = None) -> Answer:
        headers = {"content-type": "application/json", **sign_webhook(
            raw, UNIT_SIGNING_SECRET, webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}",
            timestamp=int(time.time()) if at is None else at)}
        return self.invoke(http_api_event("POST", f"/webhooks/replicate/{kind}", body=raw, headers=headers,
                                          query=query))

    # --- what is stored --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Every item of every table, every object of the bucket, and the messages each event rule
        delivered, read from moto's in-memory backends (a scan per example would dominate the run)."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends
        from moto.sqs.models import sqs_backends

        region = self.stack.region
        state: dict[str, Any] = {}
        dynamodb = dynamodb_backends[ACCOUNT_ID][region]
        for logical_id in TABLES:
            items = dynamodb.get_table(self.stack.names[logical_id]).all_items()
            state[logical_id] = sorted(json.dumps(item.to_json(), sort_keys=True) for item in items)
        bucket = s3_backends[ACCOUNT_ID]["aws"].buckets[self.stack.names["MediaBucket"]]
        state["MediaBucket"] = sorted(f"{name} {key.etag}" for name, key in bucket.keys.items())
        queues = sqs_backends[ACCOUNT_ID][region].queues
        for delivery in self.stack.deliveries:
            state[delivery.rule_name] = len(queues[delivery.queue_url.rsplit("/", 1)[-1]].messages)
        return state

    # --- seeding state the way the training API would ---------------------------------------------
    def start_training(self, user_id: str) -> TrainingItem:
        settings = self.settings
        repository = self.repository()
        model = repository.get_model(user_id)
        now = "2026-11-24T10:00:00.000Z"
        destination = model.destination if model else f"{settings.replicate_owner}/lorapin-{uuid.uuid4().hex[:20]}"
        new_model = None if model else repository.new_model(user_id, destination=destination, trigger_word="TOK",
                                                            status="training", created_at=now)
        training = TrainingItem(f"trn_{uuid.uuid4().hex}", user_id=user_id, seq=int(model.last_seq if model else 0) + 1,
                                status="starting", trigger_word="TOK", destination=destination,
                                trainer_model=settings.trainer_model, trainer_version=settings.trainer_version,
                                image_count=12, created_at=now)
        TrainingStarts(repository).begin(model, training, new_model=new_model, photo_set=PhotoSetItem(
            training.user_id, training.training_id, entries=[], created_at=training.created_at))
        TrainingStarts.attach_replicate_training(training, uuid.uuid4().hex[:26], "starting")
        fresh = repository.get_training(training.training_id)
        assert fresh is not None
        return fresh

    def train_version(self, user_id: str) -> str:
        """A training that succeeds through the webhook handler; the new version id."""
        training = self.start_training(user_id)
        version_id = secrets.token_hex(32)
        raw = json.dumps(training_body(training, "succeeded", {"version": f"{training.destination}:{version_id}"}))
        answer = self.webhook("training", raw, query=f"training_id={training.training_id}")
        assert (answer.status, answer.body) == (200, {"outcome": "activated"}), answer
        return version_id


def training_body(training: TrainingItem, status: Any, output: Any, **extra: Any) -> dict[str, Any]:
    return {"id": training.replicate_training_id, "status": status, "output": output,
            "model": training.trainer_model, "version": training.trainer_version,
            "input": {"trigger_word": "TOK"}, "created_at": "2026-11-24T10:00:01.000Z", **extra}


@pytest.fixture(scope="module")
def world(shared_in_process_aws: LocalAwsStack) -> World:
    """The handlers on in-process AWS, shared by this module's tests: each checks what it changed
    against a snapshot taken just before, and uses users of its own."""
    template = Template()
    specs = template.functions()
    handlers = {fid: load_handler(specs[fid], shared_in_process_aws.function_env[fid]) for fid in FUNCTIONS}
    routes = {(r.method, r.path): r.function_id for r in template.routes()}
    built = World(shared_in_process_aws, handlers, routes)
    for handler in handlers.values():  # record every S3 operation the functions make
        runtime = sys.modules[handler.__module__].runtime
        runtime.media._s3.meta.events.register(
            "before-call.s3", lambda model, **_: built.s3_calls.append(str(model.name)))
    return built


# --- assertions --------------------------------------------------------------------------------
def assert_not_5xx(answer: Answer, what: Any) -> None:
    assert answer.status < 500, f"{what!r:.300} -> {answer.status} {answer.crash or answer.text[:300]}"


def assert_error_shape(answer: Answer, *codes: str) -> str:
    """`{"error": {"code": "UPPER_SNAKE", "message": "...", "details": [...]}}`; the code."""
    assert isinstance(answer.body, dict), f"{answer.status}: not JSON: {answer.text[:300]}"
    assert set(answer.body) == {"error"}, f"{answer.status}: not the error shape: {answer.text[:300]}"
    error = answer.body["error"]
    assert isinstance(error, dict), answer.text[:300]
    assert isinstance(error.get("code"), str) and ERROR_CODE.match(error["code"]), answer.text[:300]
    assert isinstance(error.get("message"), str) and error["message"], answer.text[:300]
    assert isinstance(error.get("details", []), list), answer.text[:300]
    if codes:
        assert error["code"] in codes, f"{error['code']} not in {codes}: {answer.text[:300]}"
    return str(error["code"])


# --- strategies --------------------------------------------------------------------------------
def deep(n: int, inner: str = "1") -> str:
    return "[" * n + inner + "]" * n


def long_text(low: int, high: int, char: str) -> st.SearchStrategy[str]:
    return st.integers(min_value=low, max_value=high).map(lambda n: char * n)


BIG_RECIPES: dict[str, Callable[[int], str]] = {
    "nested-array": deep,
    "nested-in-object": lambda n: '{"a": ' + deep(n) + "}",
    "nested-output": lambda n: '{"id": "abc", "status": "succeeded", "output": ' + deep(n, "{}") + "}",
    "huge-fields": lambda n: json.dumps({"prompt": "x" * n, "count": "x" * n, "image_keys": ["x" * n],
                                         "version_id": "x" * n}),
    "huge-error": lambda n: json.dumps({"id": "abc", "status": "failed", "error": "e" * n, "logs": "l" * n}),
}


@dataclass(frozen=True)
class Big:
    """A large body made on demand, so that a failing example prints as its recipe, not its megabytes."""

    recipe: str
    n: int

    @property
    def text(self) -> str:
        return BIG_RECIPES[self.recipe](self.n)


def unwrap(body: Big | str | bytes | None) -> str | bytes | None:
    return body.text if isinstance(body, Big) else body


def big(recipe: str, low: int, high: int) -> st.SearchStrategy[Big]:
    return st.integers(min_value=low, max_value=high).map(lambda n: Big(recipe, n))


json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=16)
unicode_text = st.text(st.characters(codec="utf-8"), max_size=60)
lone_surrogate_strings = st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\udbff\\u0041"'])


def raw_json(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return values.map(lambda v: json.dumps(v, ensure_ascii=False))


Sent = tuple[Big | str | bytes | None, str | None]


def api_bodies(fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Sent]:
    """A raw body and the content-type header it is sent with."""
    json_types = st.sampled_from(["application/json", "application/json; charset=utf-8"])
    any_type = st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                "application/octet-stream", "multipart/form-data; boundary=x", "image/jpeg"])
    text_bodies: st.SearchStrategy[Big | str | bytes | None] = st.one_of(
        raw_json(fields), raw_json(fields), raw_json(json_values), st.text(max_size=80), unicode_text,
        big("nested-array", 1, 200_000), big("nested-in-object", 1, 60_000), big("huge-fields", 50_000, 1_500_000),
        lone_surrogate_strings.map(lambda s: '{"prompt": ' + s + ', "version_id": ' + s + "}"),
    )
    return st.one_of(
        st.tuples(text_bodies, json_types),
        st.tuples(text_bodies | st.binary(max_size=64) | st.none(), any_type),
    )


def sent_fields(body: str | bytes | None, content_type: str | None) -> Any:
    """The fields an accepted request carried, decoded the way the resolver decodes them."""
    if content_type and content_type.startswith("multipart/form-data"):
        return {}  # none of the generated bodies is a multipart document: no fields
    text = body.decode() if isinstance(body, bytes) else body or ""
    if content_type and content_type.startswith("application/x-www-form-urlencoded"):
        return {key: values if key == "image_keys" else values[0] for key, values in parse_qs(text).items()}
    fields = json.loads(text)
    # Powertools' body validation reads a JSON array as its first element (meant for form fields)
    return fields[0] if isinstance(fields, list) and fields else fields


def maybe_missing(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(MISSING) | values


MISSING = object()


def drop_missing(shape: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in shape.items() if value is not MISSING}


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    extra = st.dictionaries(st.sampled_from(["user_id", "sub", "extra", "__proto__"]), json_scalars, max_size=1)
    return st.builds(lambda base, more: {**drop_missing(base), **more},
                     st.fixed_dictionaries({k: maybe_missing(v) for k, v in fields.items()}), extra)


# --- webhooks: headers, timestamps, signatures ---------------------------------------------------
HEADER_MODES = ("missing", "wrong_secret", "stale", "future", "bad_timestamp", "tampered_body", "other_id",
                "garbage_signature", "bad_base64_body")


@st.composite
def bad_deliveries(draw: st.DrawFn, raw: str, mode: str) -> dict[str, Any]:
    """An API Gateway event delivering `raw` in a way (`mode`) that must not verify."""
    now = int(time.time())
    webhook_id = "msg_" + draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=30))
    body: str | bytes = raw
    at = now + draw(st.integers(min_value=-200, max_value=200))
    secret = UNIT_SIGNING_SECRET
    if mode == "wrong_secret":
        secret = "whsec_" + base64.b64encode(draw(st.binary(min_size=16, max_size=40))).decode()
        if secret == UNIT_SIGNING_SECRET:
            secret = "whsec_" + base64.b64encode(b"definitely-not-the-secret").decode()
    elif mode == "stale":
        at = now - draw(st.integers(min_value=400, max_value=10**8))
    elif mode == "future":
        at = now + draw(st.integers(min_value=400, max_value=10**8))
    headers = {"content-type": "application/json", **sign_webhook(raw, secret, webhook_id=webhook_id, timestamp=at)}
    if mode == "missing":
        for name in draw(st.sets(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
                                 min_size=1)):
            if draw(st.booleans()):
                del headers[name]
            else:
                headers[name] = ""
    elif mode == "bad_timestamp":
        headers["webhook-timestamp"] = draw(st.sampled_from(["", "abc", "1.7e9", "-1", "9" * 40, f"{now}.5",
                                                             f" {now}x", "NaN"]) | st.text(max_size=20))
    elif mode == "tampered_body":
        body = draw(st.sampled_from([raw + " ", raw.replace('"', "'", 1), raw.upper(), raw[:-1], " " + raw]))
        if body == raw:
            body = raw + "\n"
    elif mode == "other_id":
        headers["webhook-id"] = webhook_id + draw(st.text("xyz0123", min_size=1, max_size=5))
    elif mode == "garbage_signature":
        valid = headers["webhook-signature"].split(",", 1)[1]
        headers["webhook-signature"] = draw(st.one_of(
            st.text(max_size=100),
            st.just(valid),  # the right digest without its version prefix
            st.just(f"v2,{valid}"), st.just(f"v1a,{valid}"), st.just(f"v1,{valid[:-4]}AAAA"),
            st.just(f"v1,{valid.lower()}") if valid.lower() != valid else st.just(f"v1,{valid}x"),
            st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
            st.lists(st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
                     min_size=2, max_size=4).map(" ".join),
            st.just("v1," + "A" * 10_000),
        ))
    event = http_api_event("POST", "/webhooks/replicate/training", body=body, headers=headers, query="")
    if mode == "bad_base64_body":
        event["isBase64Encoded"] = True
        event["body"] = draw(st.sampled_from(["%%%not-base64%%%", "////", "gA==",
                                              base64.b64encode(b"\xff\xfe").decode()]))
    return event


def test_deliveries_that_do_not_verify_are_401_and_write_nothing(world: World) -> None:
    # Given a running training whose genuine success delivery would activate a version
    training = world.start_training("hank")
    version_id = secrets.token_hex(32)
    raw = json.dumps(training_body(training, "succeeded", {"version": f"{training.destination}:{version_id}"}))
    before = world.snapshot()

    def fuzz(mode: str) -> None:
        @settings(PROFILE, max_examples=max(5, PROFILE.max_examples // 4))
        @given(event=bad_deliveries(raw, mode))
        def check(event: dict[str, Any]) -> None:
            event["rawQueryString"] = f"training_id={training.training_id}"
            event["queryStringParameters"] = {"training_id": training.training_id}
            # When it arrives with headers that do not prove it came from Replicate
            answer = world.invoke(event)
            # Then it is 401 INVALID_SIGNATURE, in the error shape, and nothing at all is written
            assert_not_5xx(answer, (mode, event["headers"]))
            assert answer.status == 401, (mode, event["headers"], answer)
            assert_error_shape(answer, "INVALID_SIGNATURE")
            assert world.snapshot() == before, mode

        check()

    for mode in HEADER_MODES:  # each way of not proving the delivery came from Replicate, fuzzed
        fuzz(mode)
    # and the same body, genuinely signed, is what activates (the fuzzed deliveries were meaningful)
    genuine = world.webhook("training", raw, query=f"training_id={training.training_id}")
    assert (genuine.status, genuine.body) == (200, {"outcome": "activated"})
    model = world.repository().get_model("hank")
    assert model is not None and model.current_version is not None
    assert model.current_version.id == version_id


# --- webhooks: signed garbage bodies -------------------------------------------------------------
def training_like() -> st.SearchStrategy[Any]:
    """Training-shaped objects that are none of ours (a genuine id would make a genuine delivery)."""
    ids = st.text(max_size=30) | st.text(min_size=190, max_size=260) | json_values
    return shaped({
        "id": ids, "status": st.sampled_from(["succeeded", "failed", "canceled", "aborted", "processing", ""])
        | st.text(max_size=60) | json_values,
        "output": json_values | st.fixed_dictionaries({"version": json_values | unicode_text}),
        "error": json_values, "version": json_values, "model": json_values, "input": json_values,
        "logs": unicode_text | long_text(1000, 5000, "l"), "metrics": json_values,
    })


def signed_garbage_bodies() -> st.SearchStrategy[Big | str]:
    return st.one_of(
        raw_json(training_like()),
        raw_json(json_values),
        st.text(max_size=200),
        unicode_text,
        st.just(""), st.just("null"), st.just("[]"), st.just("{}"), st.just('{"id": "x"}'),
        big("nested-output", 1, 300_000), big("nested-array", 1, 300_000), big("huge-error", 50_000, 1_500_000),
        lone_surrogate_strings.map(lambda s: '{"id": ' + s + ', "status": "succeeded"}'),
    )


def test_signed_garbage_bodies_never_5xx_and_write_nothing(world: World) -> None:
    # Given a running training and a running generation's neighbour: things a garbage body could touch
    training = world.start_training("ivy")
    hints = st.one_of(
        st.just(""),
        st.builds(lambda key, value: urlencode({key: value}), st.sampled_from(["training_id", "generation_id"]),
                  st.sampled_from([training.training_id, "", "trn_unknown", "gen_unknown"])
                  | st.text(max_size=60) | long_text(1500, 3000, "t")),
    )

    @FUZZ
    @given(kind=st.sampled_from(["training", "prediction"]), raw=signed_garbage_bodies(), query=hints)
    @example(kind="training", raw=Big("nested-array", 100_000), query="")
    @example(kind="training", raw=json.dumps(training_body(training, "succeeded", {"version": "x"}), indent=None)
             .replace(str(training.replicate_training_id), "someone-else"), query=f"training_id={training.training_id}")
    @example(kind="prediction", raw='{"id": "p1", "status": "succeeded", "output": ["https://x.invalid/a.png"]}',
             query="generation_id=" + "g" * 3000)
    def check(kind: str, raw: Big | str, query: str) -> None:
        before = world.snapshot()
        # When a correctly signed delivery carries a body that is not one of our objects
        answer = world.webhook(kind, str(unwrap(raw)), query=query)
        # Then it is never a 5xx; a rejection is the error shape and writes nothing at all;
        # an accepted delivery for nothing of ours is ignored and touches no domain state
        assert_not_5xx(answer, (kind, raw, query[:80]))
        after = world.snapshot()
        if answer.status >= 400:
            assert answer.status == 400, answer
            assert_error_shape(answer, "MALFORMED_BODY")
            assert after == before
        else:
            assert answer.status == 200, answer
            assert answer.body == {"outcome": "ignored_unknown"}, answer
            assert after == before

    check()


# --- webhooks: fuzzed outcomes of a genuine training ---------------------------------------------
def expected_version(output: Any, destination: str, trainer_version: str) -> str | None:
    """An independent statement of R2: the id that may become current, or None (reject)."""
    if not isinstance(output, dict) or not isinstance(output.get("version"), str):
        return None
    value = output["version"].strip()
    model, sep, version_id = value.partition(":")
    if not sep:
        model, version_id = destination, value
    if model != destination or not HEX64.fullmatch(version_id) or version_id == trainer_version:
        return None
    return version_id


def version_strings(destination: str, trainer_version: str) -> st.SearchStrategy[Any]:
    hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
    owner, name = destination.split("/")
    return st.one_of(
        hex64.map(lambda h: f"{destination}:{h}"),  # what Replicate sends
        hex64,  # a bare id (accepted for the destination)
        hex64.map(lambda h: f" {destination}:{h}\n"),
        hex64.map(lambda h: f"{owner}/someone-else:{h}"),
        hex64.map(lambda h: f"evil/{name}:{h}"),
        hex64.map(lambda h: f"{destination}:{h.upper()}"),
        hex64.map(lambda h: f"{destination}:{h[:8]}"),
        hex64.map(lambda h: f"{destination}:{h}:{h}"),
        hex64.map(lambda h: f"{destination}/x:{h}"),
        hex64.map(lambda h: f"{destination}:{h}0"),
        st.just(f"{destination}:{trainer_version}"), st.just(trainer_version),
        st.just(f"ostris/flux-dev-lora-trainer:{trainer_version}"),
        st.text(max_size=80), json_values,
    )


def test_fuzzed_outcomes_of_a_genuine_training_follow_the_version_rules(world: World) -> None:
    settings_ = world.settings
    counter = iter(range(10**6))

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        # Given a user whose first training is running
        user_id = f"user-{next(counter)}"
        training = world.start_training(user_id)
        destination = training.destination
        status = data.draw(st.sampled_from(["succeeded"] * 4 + ["failed", "canceled", "aborted", "processing",
                                                                "starting", "weird-status", "SUCCEEDED"]),
                           label="status")
        output = data.draw(st.one_of(
            st.fixed_dictionaries({"version": version_strings(destination, settings_.trainer_version)},
                                  optional={"weights": st.text(max_size=30)}),
            st.none(), json_values, st.just({}),
        ), label="output")
        error = data.draw(st.none() | json_values | long_text(2000, 5000, "e"), label="error")
        raw = json.dumps(training_body(training, status, output, error=error))
        before = world.snapshot()
        # When Replicate (signed) reports this outcome
        answer = world.webhook("training", raw, query=f"training_id={training.training_id}")
        # Then the answer and the stored state follow R2/R3/I3
        assert_not_5xx(answer, raw[:300])
        model = world.repository().get_model(user_id)
        stored = world.repository().get_training(training.training_id)
        assert model is not None and stored is not None
        wanted = expected_version(output, destination, settings_.trainer_version)
        assert answer.status == 200, (status, output, answer)  # genuine: never asked again
        if status == "succeeded" and wanted is None:
            # an unusable version (R2): the training ends failed, nothing becomes a version
            assert answer.body == {"outcome": "rejected"}
            assert (stored.status, stored.error_code) == ("failed", "INVALID_OUTPUT_VERSION")
            assert model.current_version is None and model.in_flight_training_id is None
            assert world.snapshot()["VersionsTable"] == before["VersionsTable"]
            return
        if status == "succeeded":
            assert answer.body == {"outcome": "activated"}
            assert model.current_version is not None
            assert model.current_version.id == wanted
            assert model.current_version.ref == f"{destination}:{wanted}"
            assert stored.status == "succeeded"
            assert stored.version_id == wanted
            return
        assert answer.body == {"outcome": "recorded"}
        assert model.current_version is None  # I3: only a success moves the version
        if status in ("processing", "starting"):
            assert stored.status == status
            assert model.in_flight_training_id == training.training_id
        else:
            assert stored.status == ("canceled" if status == "canceled" else "failed")
            assert model.in_flight_training_id is None
            assert stored.error is not None and len(stored.error) <= 1000

    check()


# --- the API: bodies of POST /uploads, /trainings, /generations, /model/rollback -----------------
small_ints = st.integers(min_value=-5, max_value=80)
weird_numbers: st.SearchStrategy[Any] = st.sampled_from([0, -1, 1.5, 3.0, True, False, 2**63, "3", "", None, [], {},
                                                         1e308])


def test_upload_bodies(world: World) -> None:
    body_strategy = api_bodies(shaped({
        "count": small_ints | weird_numbers | json_values,
        "content_type": st.sampled_from(["image/jpeg", "image/png", "image/webp", "image/heic", "image/gif",
                                         "text/html", "IMAGE/JPEG", "image/jpeg; charset=utf-8", "",
                                         "application/zip"])
        | unicode_text | json_values,
    }))
    before = world.snapshot()

    @FUZZ
    @given(sent=body_strategy, user=st.sampled_from(["uploader", "user/with/slashes", None]))
    @example(sent=(Big("nested-array", 100_000), "application/json"), user="uploader")
    @example(sent=(b"\xff\xfe\x00garbage", None), user="uploader")
    @example(sent=('{"count": 1}', "text/plain"), user="uploader")
    def check(sent: Sent, user: str | None) -> None:
        body, content_type = unwrap(sent[0]), sent[1]
        answer = world.api("POST", "/uploads", user=user, body=body, content_type=content_type)
        assert_not_5xx(answer, sent)
        # Presigning never writes: whatever the answer, the stores are untouched
        assert world.snapshot() == before
        if answer.status == 201:
            request = sent_fields(body, content_type)
            assert user is not None
            uploads = answer.body["uploads"]
            assert len(uploads) == int(request["count"]) and 1 <= len(uploads) <= 50
            content_type_sent = request.get("content_type", "image/jpeg")
            extension = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic",
                         "image/heif": "heif"}[content_type_sent]
            for upload in uploads:
                assert re.fullmatch(rf"users/{re.escape(user)}/uploads/[0-9a-f]{{32}}\.{extension}", upload["key"])
                # a form POST whose policy pins the key and the type (S3 enforces them, and the size)
                assert upload["method"] == "POST"
                assert upload["fields"]["key"] == upload["key"]
                assert upload["fields"]["Content-Type"] == content_type_sent
            return
        # Rejected: unparseable (400/415/422) or no caller (401), always in the error shape
        assert answer.status in (400, 401, 415, 422), answer
        assert_error_shape(answer)

    check()


def image_keys(user: str) -> st.SearchStrategy[str]:
    own = f"users/{user}/uploads/"
    return st.one_of(
        st.sampled_from([f"{own}junk.jpg", f"{own}absent.jpg", f"{own}", f"{own}../../other/uploads/x.jpg",
                         f"users/{user}x/uploads/a.jpg", "users/other/uploads/a.jpg", f"/{own}a.jpg",
                         f"users/{user}/trainings/t.zip", f"users/{user}/generations/g/0.png", "", "..",
                         f"{own}..%2f..%2fother/x.jpg", f"{own}ü😀.jpg"]),
        st.text(max_size=40).map(lambda s: own + s),
        st.text(max_size=60),
        long_text(1100, 1300, "k").map(lambda s: own + s),
    )


def test_training_bodies(world: World) -> None:
    user = "trainer"
    # Given a file in the user's own prefix that is not an image
    world.client("s3").put_object(Bucket=world.stack.names["MediaBucket"], Key=f"users/{user}/uploads/junk.jpg",
                                        Body=b"not an image", ContentType="image/jpeg")
    body_strategy = api_bodies(shaped({
        "image_keys": st.lists(image_keys(user), max_size=6) | st.lists(image_keys(user), min_size=195, max_size=210)
        | json_values,
        "mode": st.sampled_from(["merge", "replace", "MERGE", "", None]) | json_values,
        "trigger_word": st.sampled_from(["TOK", "ZQX_person", "a", "1abc", "x" * 40, "tok en", ""]) | unicode_text,
        "acknowledge_warnings": st.booleans() | json_values,
    }))
    before = world.snapshot()

    @FUZZ
    @given(sent=body_strategy)
    @example(sent=(json.dumps({"image_keys": ["users/other/uploads/a.jpg", f"users/{user}/uploads/junk.jpg"]}),
                   "application/json"))
    @example(sent=(json.dumps({"image_keys": [f"users/{user}/uploads/" + "k" * 1100]}), "application/json"))
    @example(sent=(Big("nested-array", 100_000), "application/json"))
    def check(sent: Sent) -> None:
        body, content_type = unwrap(sent[0]), sent[1]
        answer = world.api("POST", "/trainings", user=user, body=body, content_type=content_type)
        assert_not_5xx(answer, sent)
        # No photo here is trainable, so every answer is a rejection, in the error shape, writing nothing
        assert answer.status in (400, 403, 409, 415, 422), answer
        code = assert_error_shape(answer)
        assert world.snapshot() == before
        if code not in ("IMAGE_VALIDATION", "TRIGGER_WORD_LOCKED"):
            assert world.s3_calls == [], "a request refused before the photos are checked must read nothing"
        if code == "FORBIDDEN_IMAGE_KEY":
            assert answer.status == 403
        if code == "IMAGE_VALIDATION":
            keys = sent_fields(body, content_type).get("image_keys", [])
            assert all(k.startswith(f"users/{user}/uploads/") and ".." not in k for k in keys)
            findings = answer.body["error"]["details"]
            assert findings and all(ERROR_CODE.match(f["code"]) and f["severity"] in ("error", "warning")
                                    for f in findings)
            assert "GetObject" not in world.s3_calls or f"users/{user}/uploads/junk.jpg" in keys

    check()


def test_generation_bodies(world: World) -> None:
    # Given one user whose first training runs (generations wait for it) and one with no model
    world.start_training("waiter")
    body_strategy = api_bodies(shaped({
        "prompt": st.text(max_size=50) | unicode_text | long_text(1990, 2010, "p") | json_values,
        "num_outputs": small_ints | weird_numbers,
        "aspect_ratio": st.sampled_from(["1:1", "16:9", "9:21", "2:1", "1:1 ", "", "16/9"]) | unicode_text,
    }))

    @FUZZ
    @given(sent=body_strategy, user=st.sampled_from(["waiter", "nomodel", None]))
    @example(sent=(Big("nested-array", 100_000), "application/json"), user="waiter")
    @example(sent=('{"prompt": "a\\ud800"}', "application/json"), user="waiter")
    def check(sent: Sent, user: str | None) -> None:
        body, content_type = unwrap(sent[0]), sent[1]
        before = world.snapshot()
        answer = world.api("POST", "/generations", user=user, body=body, content_type=content_type)
        assert_not_5xx(answer, sent)
        after = world.snapshot()
        if answer.status == 202:
            # Accepted: exactly one generation, waiting, with the prompt as sent
            assert user == "waiter"
            generation = answer.body["generation"]
            assert generation["status"] == "waiting_for_model"
            assert generation["model_version_ref"] is None
            assert generation["prompt"] == sent_fields(body, content_type)["prompt"]
            assert len(after["GenerationsTable"]) == len(before["GenerationsTable"]) + 1
            return
        assert answer.status in (400, 401, 409, 415, 422), answer
        code = assert_error_shape(answer)
        assert (code == "NO_MODEL") == (answer.status == 409)
        assert code != "NO_MODEL" or user == "nomodel"
        assert after == before

    check()


def test_rollback_bodies(world: World) -> None:
    # Given a user with two versions (the second current), and another user with one of their own
    own = [world.train_version("roller"), world.train_version("roller")]
    foreign = world.train_version("stranger")
    body_strategy = api_bodies(shaped({
        "version_id": st.sampled_from([*own, foreign, own[0].upper(), own[0][:8], f" {own[0]}", ""])
        | st.binary(min_size=32, max_size=32).map(bytes.hex) | unicode_text | json_values,
    }))

    @FUZZ
    @given(sent=body_strategy, user=st.sampled_from(["roller", "roller", "nomodel", None]))
    @example(sent=(json.dumps({"version_id": foreign}), "application/json"), user="roller")
    @example(sent=(Big("nested-array", 100_000), "application/json"), user="roller")
    def check(sent: Sent, user: str | None) -> None:
        body, content_type = unwrap(sent[0]), sent[1]
        before = world.snapshot()
        answer = world.api("POST", "/model/rollback", user=user, body=body, content_type=content_type)
        assert_not_5xx(answer, sent)
        if answer.status == 200:
            # Only the caller's own versions can be pinned
            version_id = sent_fields(body, content_type)["version_id"]
            assert user == "roller" and version_id in own
            current = answer.body["model"]["current_version"]
            assert current["id"] == version_id
            assert current["reason"] == "rollback"
            return
        assert answer.status in (400, 401, 404, 415, 422), answer
        code = assert_error_shape(answer)
        if answer.status == 404:
            assert code == ("NO_MODEL" if user == "nomodel" else "UNKNOWN_VERSION")
        assert world.snapshot() == before
        stranger = world.repository().get_model("stranger")
        assert stranger is not None and stranger.current_version is not None
        assert stranger.current_version.id == foreign

    check()


# --- the bugs the fuzzing found, pinned as plain examples ----------------------------------------
def test_a_signed_delivery_of_another_replicate_training_leaves_the_hinted_training_alone(world: World) -> None:
    # Given a user whose first training is running: the slot is held and the model is training
    training = world.start_training("judy")
    before = world.snapshot()
    # When a genuinely signed delivery of some *other* Replicate training arrives with her training's
    # id in the (unsigned) query string
    other = {**training_body(training, "succeeded", {"version": f"{training.destination}:{'a' * 64}"}),
             "id": "not-judys-replicate-training"}
    answer = world.webhook("training", json.dumps(other), query=f"training_id={training.training_id}")
    # Then it is ignored, and nothing of hers changes: her training still holds the slot (I2, I6)
    assert (answer.status, answer.body) == (200, {"outcome": "ignored_unknown"})
    model = world.repository().get_model("judy")
    assert model is not None
    assert model.in_flight_training_id == training.training_id
    assert model.status == "training"
    assert world.snapshot() == before


API_ROUTES = [("POST", "/uploads"), ("POST", "/trainings"), ("POST", "/generations"), ("POST", "/model/rollback")]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(deep(100_000), "application/json", id="deeply-nested-json"),
    pytest.param(b"\xff\xfe\x00\x81", None, id="binary-body-without-content-type"),
    pytest.param('{"prompt": "x"}', "text/plain", id="text-plain-content-type"),
])
def test_unparseable_api_bodies_are_4xx_in_the_error_shape(world: World, method: str, path: str,
                                                           body: str | bytes, content_type: str | None) -> None:
    before = world.snapshot()
    answer = world.api(method, path, user="someone", body=body, content_type=content_type)
    assert_not_5xx(answer, body[:40])
    assert 400 <= answer.status < 500
    assert_error_shape(answer)
    assert world.snapshot() == before
