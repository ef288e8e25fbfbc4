"""The built artifact is what runs: `sam build` of the template (retargeted to x86_64 so that its
wheels load on this machine, see infra/build/sam.py), then every function imported and invoked from
that build in a clean `python3.12 -I -S` process whose only imports are the function's folder, its
layers' python/ and the boto3 the Lambda runtime provides, against moto's server.

An import that only breaks inside the layer (a missing dependency, a native wheel for the wrong
platform, a module left out of `ContentUri`) fails here; the source-tree tests would not see it.
`make artifact-test` runs this module alone; `make test` runs it once, with the rest.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.build.invoke import Invocation, invoke_built, run_handler
from infra.build.python312 import Python312Missing, find_python312
from infra.build.runtime import runtime_boto3
from infra.build.sam import BuildFailed, BuiltStack, sam_build
from infra.local.apigw import http_api_event
from infra.local.aws_stack import LocalAwsStack, provision
from infra.local.template import Template
from infra.resign_event import resign

EVENTS = Path(__file__).resolve().parents[2] / "events"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
SIGNING_SECRET = "whsec_QXJ0aWZhY3RUZXN0U2lnbmluZ0tleTAx"
# What a function's first request must find made by its init (`Runtime.prepare`, the services it
# imports): its clients, lorapin's modules, PynamoDB, and the HTTP client of downloads and Replicate.
MADE_AT_INIT = ("lorapin", "boto3", "botocore", "s3transfer", "pynamodb", "httpx", "httpcore", "replicate")
TRACE_HEADER = "Root=1-67890abc-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"


@dataclass
class Artifact:
    python312: Path
    built: BuiltStack
    runtime: Path  # the runtime's boto3
    aws: LocalAwsStack

    def invoke(self, function_id: str, event: dict[str, Any] | None = None,
               extra_env: dict[str, str] | None = None) -> Invocation:
        env = {**self.aws.function_env[function_id], **(extra_env or {})}
        return invoke_built(self.python312, self.built, function_id, self.runtime, env, event)

    def roots(self, function_id: str) -> tuple[Path, ...]:
        return (self.built.functions()[function_id].code_dir, *self.built.layer_folders(function_id), self.runtime)


@pytest.fixture(scope="module")
def artifact(moto_server: str) -> Artifact:
    try:
        python312 = find_python312()
        built = sam_build("x86_64")
    except (Python312Missing, BuildFailed) as exc:
        pytest.fail(str(exc), pytrace=False)
    aws = provision(Template(), endpoint_url=moto_server, prefix=f"a{uuid.uuid4().hex[:10]}",
                    secret_value={"api_token": "r8_artifact", "webhook_signing_secret": SIGNING_SECRET},
                    env_overrides={"REPLICATE_BASE_URL": "http://127.0.0.1:9"})  # no Replicate call is expected
    return Artifact(python312, built, runtime_boto3(python312), aws)


class XRayDaemon:
    """A UDP socket standing in for the X-Ray daemon: the segments the functions send, in order."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.socket.getsockname()[1]}"

    def received(self) -> list[dict[str, Any]]:
        """What has arrived (a local UDP send is in the buffer once the sender has returned)."""
        segments: list[dict[str, Any]] = []
        while True:
            try:
                datagram = self.socket.recv(65536)
            except BlockingIOError:
                return segments
            header, _, body = datagram.decode().partition("\n")
            assert json.loads(header)["format"] == "json"
            segments.append(json.loads(body))


@pytest.fixture
def xray() -> Iterator[XRayDaemon]:
    daemon = XRayDaemon()
    yield daemon
    daemon.socket.close()


def traced(daemon: XRayDaemon) -> dict[str, str]:
    """Tracing on, as in Lambda: Powertools' Tracer, the X-Ray SDK in Lambda mode, a sampled trace."""
    return {"POWERTOOLS_TRACE_DISABLED": "false", "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": daemon.address, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text(encoding="utf-8")))


# --- the layer -----------------------------------------------------------------------------------
def distributions(folder: Path) -> dict[str, Path]:
    """Installed distributions in a built layer's python/: normalised name → its dist-info."""
    return {info.name.split("-")[0].lower().replace("_", "-"): info for info in folder.glob("*.dist-info")}


def test_the_built_layer_carries_no_boto3_botocore_or_s3transfer(artifact: Artifact) -> None:
    for name, folder in artifact.built.layers().items():
        python = folder / "python"
        assert (python / "lorapin" / "runtime.py").is_file(), f"{name} lacks lorapin itself"
        carried = [entry.name for entry in python.iterdir()
                   if entry.name.split("-")[0].lower() in RUNTIME_PROVIDED]
        assert carried == [], f"{name} carries what the runtime provides"
        assert not set(distributions(python)) & set(RUNTIME_PROVIDED)
        assert {"aws-lambda-powertools", "pynamodb", "pydantic", "replicate"} <= set(distributions(python))


# --- every function imports from the artifact alone ----------------------------------------------
@pytest.fixture(scope="module")
def imported(artifact: Artifact) -> dict[str, Invocation]:
    """Every built function's handler imported once, as at a cold start."""
    return {function_id: artifact.invoke(function_id) for function_id in sorted(artifact.built.functions())}


def test_every_function_of_the_template_imports_from_its_artifact_alone(artifact: Artifact,
                                                                         imported: dict[str, Invocation]) -> None:
    assert set(imported) == set(Template().functions())  # any function added later is checked too
    for function_id, loaded in imported.items():
        assert loaded.modules_outside(*artifact.roots(function_id)) == {}, function_id
        assert loaded.modules["botocore"].startswith(str(artifact.runtime.resolve())), function_id
        assert loaded.modules["lorapin.runtime"].startswith(str(artifact.built.folder.resolve())), function_id


def test_nothing_but_the_handler_module_is_compiled_at_a_cold_start(artifact: Artifact,
                                                                     imported: dict[str, Invocation]) -> None:
    """Lambda's /var/task and /opt are read-only, so a module shipped without bytecode is compiled
    again at every cold start: the training API's init took 564 ms so (its layer as sources), 228
    with bytecode; the photo inspector's 28 Pillow and pillow-heif modules ~48 of its ~245 ms."""
    for function_id, loaded in imported.items():
        handler = artifact.built.functions()[function_id].code_dir.resolve() / "app.py"
        assert [file for file in loaded.compiled if Path(file).resolve() != handler] == [], function_id
        assert loaded.modules["lorapin.runtime"].endswith("runtime.py"), "lorapin ships its sources, for tracebacks"


@pytest.mark.parametrize("function_id", ["ReplicateWebhookFunction", "PhotoInspectorFunction"])
def test_a_functions_libraries_alone_load_its_third_party_modules_and_none_of_lorapin(
        artifact: Artifact, imported: dict[str, Invocation], function_id: str, tmp_path: Path) -> None:
    """The cold-start bench's bound (`infra.bench.cold_start.libraries_alone`) claims to load what
    the function's init loads from its folder, its layer and the runtime's boto3, but for lorapin."""
    from infra.bench.cold_start import libraries_alone

    env = artifact.aws.function_env[function_id]
    alone = libraries_alone(artifact.python312, artifact.built, function_id, artifact.runtime, env, tmp_path)()
    roots = tuple(f"{root.resolve()}/" for root in artifact.roots(function_id))

    def third_party(loaded: Invocation) -> set[str]:
        return {name for name, file in loaded.modules.items() if name in loaded.at_init
                and name.split(".")[0] not in ("lorapin", "app") and str(Path(file).resolve()).startswith(roots)}

    assert alone.response == []  # it imported every module it was given
    assert third_party(alone) == third_party(imported[function_id])
    assert not [name for name in alone.modules if name.split(".")[0] == "lorapin"]


def test_the_photo_inspector_imports_no_event_classes_and_no_pydantic_at_its_cold_start(
        imported: dict[str, Invocation]) -> None:
    """Powertools' data_classes package imports every event class it knows (~10 ms of the
    inspector's init); the inspector reads two fields of one event
    (`lorapin.services.photo_inspection.ObjectCreated`). pydantic's models cost ~46 ms, and the
    inspector has none (settings are plain dataclasses)."""
    loaded = imported["PhotoInspectorFunction"].modules
    assert "aws_lambda_powertools.utilities.data_classes" not in loaded
    assert not [name for name in loaded if name.split(".")[0] in ("pydantic", "pydantic_core")]
    # nor the repository and its outbox, events and schedule: it keeps photos through PhotoRecords
    assert "lorapin.adapters.repository" not in loaded


REPLICATE_PROBE = """
import sys

from lorapin.adapters.replicate_gateway import ReplicateGateway
from lorapin.domain.versions import ModelName


def handler(event, context):
    gateway = ReplicateGateway("r8_artifact", event["base_url"])
    model = ModelName.parse("artifact/probe")
    created = not gateway.model_exists(model)
    gateway.create_model(model, hardware="cpu")
    trainer = ModelName.parse(event["trainer"])
    return {"created": created and gateway.model_exists(model), "trainer_latest": gateway.latest_version_id(trainer),
            "loaded": sorted(name for name in sys.modules if name.split(".")[0] in ("anyio", "packaging", "httpcore"))}
"""


def test_the_layers_replicate_client_calls_replicate_without_what_the_layer_leaves_out(
        artifact: Artifact, tmp_path: Path) -> None:
    """anyio (async clients only) and most of `packaging` are left out of the layer (build_layer.py):
    the synchronous client lorapin uses still reads and writes through the layer alone."""
    from infra.emulator import TRAINER_MODEL, TRAINER_VERSION_ID, ReplicateEmulator

    (tmp_path / "probe.py").write_text(REPLICATE_PROBE, encoding="utf-8")
    layers = [folder / "python" for folder in artifact.built.layer_folders("GenerationFunction")]
    assert not (layers[0] / "anyio").exists()
    with ReplicateEmulator() as emulator:
        done = run_handler(artifact.python312, tmp_path, layers, artifact.runtime, "probe.handler", "Probe", {},
                           {"base_url": emulator.url, "trainer": TRAINER_MODEL})
        assert "artifact/probe" in emulator.models
    assert done.response["created"] is True, done.output
    assert done.response["trainer_latest"] == TRAINER_VERSION_ID
    assert "httpcore" in done.response["loaded"] and "anyio" not in done.response["loaded"]


def test_the_openapi_document_from_the_layer_is_the_repositorys(artifact: Artifact) -> None:
    """Third-party bytecode ships without docstrings (build_layer.py); pydantic and Powertools build
    the OpenAPI document from docstrings too, so the one the built function serves must be the one
    the sources make."""
    from lorapin.http.openapi import document

    done = artifact.invoke("TrainingApiFunction", http_api_event("GET", "/openapi.json",
                                                                 route_key="GET /openapi.json"))
    assert done.response["statusCode"] == 200, done.output
    served = json.loads(done.response["body"])
    assert served["paths"] and served == document()


# --- one event each, against moto's server -------------------------------------------------------
def test_a_signed_webhook_answers_200(artifact: Artifact, xray: XRayDaemon) -> None:
    event = resign(sample("training_succeeded.json"), SIGNING_SECRET)  # a training that is not ours
    done = artifact.invoke("ReplicateWebhookFunction", event, traced(xray))
    assert done.response["statusCode"] == 200, done.output
    assert json.loads(done.response["body"]) == {"outcome": "ignored_unknown"}
    assert "pydantic" not in done.modules  # ~46 ms of a cold start: Replicate's bodies are read by dataclasses
    assert done.imported_by_the_request(*MADE_AT_INIT) == []  # Runtime.prepare: the init made it all
    # ~11 ms more: outputs are downloaded over botocore's urllib3, and the webhook calls no Replicate API
    assert [name for name in done.modules if name.split(".")[0] in ("httpx", "httpcore", "replicate")] == []
    forged = artifact.invoke("ReplicateWebhookFunction", resign(sample("training_succeeded.json"),
                                                                 "whsec_Rm9yZ2VkS2V5Rm9yZ2VkS2V5"))
    assert forged.response["statusCode"] == 401


def test_functions_that_store_media_load_no_s3_transfer_manager(artifact: Artifact, xray: XRayDaemon) -> None:
    """lorapin's S3 calls (put, head, presign) are botocore's own: a boto3 client would load boto3's
    transfer manager with s3transfer, multiprocessing and concurrent.futures (~15 ms of each of
    these cold starts) for methods nothing calls."""
    webhook = artifact.invoke("ReplicateWebhookFunction", resign(sample("training_succeeded.json"), SIGNING_SECRET),
                              traced(xray))
    generation = artifact.invoke("GenerationFunction", sample("model_version_activated.json"), traced(xray))
    for done in (webhook, generation):
        assert "lorapin.adapters.media" in done.at_init, done.output  # the function did make its S3 client
        assert [name for name in done.modules if name.split(".")[0] == "s3transfer"
                or name.startswith("boto3.s3")] == []


class OutputOrigin:
    """Where a prediction's output is served from: one PNG, and every path asked for."""

    def __init__(self, body: bytes) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def names_in(segments: list[dict[str, Any]]) -> set[str]:
    """Every segment's and nested subsegment's name."""
    return {name for segment in segments
            for name in (segment["name"], *names_in(segment.get("subsegments", [])))}


def test_a_prediction_webhook_copies_its_output_with_the_layer_and_the_runtimes_urllib3(
        artifact: Artifact, xray: XRayDaemon) -> None:
    """The download as Lambda runs it: over the urllib3 the runtime's botocore brings, traced in a
    subsegment of its own (urllib3 is not patched for X-Ray), the copy stored in the media bucket."""
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    origin = OutputOrigin(png)
    generation_id, prediction_id = f"gen_20261207000000{uuid.uuid4().hex[:16]}", f"p{uuid.uuid4().hex[:12]}"
    artifact.aws.client("dynamodb").put_item(TableName=artifact.aws.names["GenerationsTable"], Item={
        "generation_id": {"S": generation_id}, "user_id": {"S": "artifact-user"}, "status": {"S": "starting"},
        "prompt": {"S": "TOK on a bike"}, "request": {"S": json.dumps({"prompt": "on a bike"})},
        "replicate_prediction_id": {"S": prediction_id}, "created_at": {"S": "2026-11-24T11:00:00+00:00"}})
    event = sample("prediction_succeeded.json")
    body = {**json.loads(event["body"]), "id": prediction_id, "output": [f"{origin.url}/out-0.png"],
            "completed_at": datetime.now(UTC).isoformat()}
    event.update(body=json.dumps(body), rawQueryString=f"generation_id={generation_id}",
                 queryStringParameters={"generation_id": generation_id})
    try:
        done = artifact.invoke("ReplicateWebhookFunction", resign(event, SIGNING_SECRET),
                               {**traced(xray), "DOWNLOAD_ALLOWED_HOSTS": origin.url})
    finally:
        origin.close()
    assert done.response["statusCode"] == 200, done.output
    assert json.loads(done.response["body"]) == {"outcome": "recorded"}
    assert origin.hits == ["/out-0.png"]
    s3, bucket = artifact.aws.client("s3"), artifact.aws.names["MediaBucket"]
    (copy,) = s3.list_objects_v2(Bucket=bucket, Prefix=f"users/artifact-user/generations/{generation_id}/")["Contents"]
    stored = s3.get_object(Bucket=bucket, Key=copy["Key"])
    assert stored["Body"].read() == png
    assert "## download output" in names_in(xray.received())
    assert Path(done.modules["urllib3"]).resolve().is_relative_to(artifact.runtime.resolve())
    assert done.imported_by_the_request(*MADE_AT_INIT) == []


def test_a_jwt_route_answers_for_the_caller_of_the_authorizers_claims(artifact: Artifact,
                                                                      xray: XRayDaemon) -> None:
    claims = {"sub": "artifact-user", "iss": "https://issuer.example", "aud": "lorapin-frontend"}
    event = http_api_event("POST", "/uploads", route_key="POST /uploads", claims=claims,
                           body=json.dumps({"count": 1}), headers={"content-type": "application/json"})
    done = artifact.invoke("TrainingApiFunction", event, traced(xray))
    assert done.response["statusCode"] == 201, done.output
    (upload,) = json.loads(done.response["body"])["uploads"]
    assert upload["key"].startswith("users/artifact-user/uploads/")
    # traced as in Lambda, and the presigned URL it answered with is not in the trace
    segments = xray.received()
    assert any(s["name"] == "## lambda_handler" for s in segments), "the handler was not traced"
    assert upload["url"] not in json.dumps(segments)
    assert not [s for s in segments if any(key.endswith(" response")
                                           for key in s.get("metadata", {}).get("lorapin", {}))]


def test_the_reconcilers_schedule_event_runs(artifact: Artifact, xray: XRayDaemon) -> None:
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2026-11-28T00:00:00Z", "region": "us-east-1",
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}}
    done = artifact.invoke("ReconcilerFunction", event, traced(xray))
    assert done.response["errors"] == [], done.output
    assert done.response["trainings_checked"] == 0
    assert done.imported_by_the_request(*MADE_AT_INIT) == []


def test_the_generation_functions_bus_event_runs(artifact: Artifact, xray: XRayDaemon) -> None:
    done = artifact.invoke("GenerationFunction", sample("model_version_activated.json"), traced(xray))
    assert done.response == {"released": 0}, done.output
    assert done.imported_by_the_request(*MADE_AT_INIT) == []


def test_the_photo_inspector_decodes_a_heic_upload_from_its_own_dependencies(artifact: Artifact,
                                                                             xray: XRayDaemon) -> None:
    """Pillow and pillow-heif come from the inspector's own requirements (native wheels for the
    runtime's Python), not from the shared layer."""
    from infra.local.photos_fixture import make_photo

    event = sample("photo_uploaded.json")
    key = event["detail"]["object"]["key"].replace(".jpg", ".heic")
    event["detail"]["object"]["key"] = key
    artifact.aws.client("s3").put_object(Bucket=artifact.aws.names["MediaBucket"], Key=key,
                                         Body=make_photo(5, fmt="HEIF"), ContentType="image/heic")
    done = artifact.invoke("PhotoInspectorFunction", event, traced(xray))
    assert done.response == {"photo_key": key, "inspected": True, "usable": True}, done.output
    assert "PIL" in {name.split(".")[0] for name in done.modules}
    assert "pydantic" not in done.modules  # nor at the first photo
    assert done.imported_by_the_request(*MADE_AT_INIT) == []  # (Pillow loads its format plugins on first use)
    assert done.modules["PIL"].startswith(str(artifact.built.functions()["PhotoInspectorFunction"].code_dir.resolve()))
    shared_layers = [folder / "python" for folder in artifact.built.layers().values()]
    assert not any((layer / "PIL").exists() for layer in shared_layers), "Pillow leaked into the shared layer"
