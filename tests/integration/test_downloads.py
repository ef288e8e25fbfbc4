"""Downloads only from Replicate, over HTTP: a prediction's outputs are fetched only from the allowed
sources (locally, the emulator's origin; deployed, Replicate's delivery hosts), redirects are
followed only within them, and a body over the cap is refused. A leaked signing secret must not
turn the webhook into a fetch-anything proxy."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from lorapin.adapters.replicate_gateway import ReplicateGateway
from lorapin.domain.downloads import DownloadPolicy
from lorapin.domain.errors import DownloadRefused, UpstreamUnavailable
from tests.harness import Harness, seed_training, wait_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Origin:
    """A small HTTP server that records every request it gets and answers from `routes`."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hangups: set[str] = set()  # paths answered by closing the connection, nothing sent
        self.stalls: dict[str, tuple[int, int]] = {}  # path → (bytes declared, bytes sent before stalling)
        self.abandoned: list[str] = []  # stalled paths whose client left before the body ended
        origin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                origin.hits.append(self.path)
                if self.path in origin.hangups:
                    self.close_connection = True
                    return
                if self.path in origin.stalls:
                    self._stall(*origin.stalls[self.path])
                    return
                status, headers, body = origin.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "transfer-encoding" not in headers:
                    self.send_header("content-length", str(len(body)))
                self.end_headers()
                if headers.get("transfer-encoding") == "chunked":
                    for start in range(0, len(body), 4096):
                        piece = body[start:start + 4096]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)

            def _stall(self, declared: int, sent: int) -> None:
                """Send part of the body, then hold the rest until the client hangs up."""
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(declared))
                self.end_headers()
                self.wfile.write(b"x" * sent)
                self.wfile.flush()
                self.connection.settimeout(30)
                try:
                    left = self.connection.recv(1) == b""  # the client sends nothing more: b"" is its close
                except OSError:
                    left = True
                if left:
                    origin.abandoned.append(self.path)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    """Two origins on this machine: `trusted` (allowed) and `elsewhere` (not allowed)."""
    trusted, elsewhere = Origin(), Origin()
    with contextlib.ExitStack() as stack:
        stack.callback(trusted.close)
        stack.callback(elsewhere.close)
        yield trusted, elsewhere


def gateway_for(trusted: Origin, *, max_bytes: int = 1024 * 1024) -> ReplicateGateway:
    return ReplicateGateway("r8_local", "http://127.0.0.1:9",
                            downloads=DownloadPolicy.from_allow_list(trusted.url, max_bytes=max_bytes))


def test_an_allowed_source_is_downloaded_and_a_redirect_within_it_is_followed(
        origins: tuple[Origin, Origin]) -> None:
    trusted, _ = origins
    trusted.routes["/out-0.png"] = (200, {"content-type": "image/png"}, PNG)
    trusted.routes["/moved.png"] = (302, {"location": "/out-0.png"}, b"")
    assert gateway_for(trusted).download(f"{trusted.url}/out-0.png") == (PNG, "image/png")
    assert gateway_for(trusted).download(f"{trusted.url}/moved.png") == (PNG, "image/png")
    assert trusted.hits == ["/out-0.png", "/moved.png", "/out-0.png"]


def test_a_redirect_out_of_the_allowed_sources_is_not_followed(origins: tuple[Origin, Origin]) -> None:
    trusted, elsewhere = origins
    elsewhere.routes["/secret"] = (200, {"content-type": "image/png"}, PNG)
    trusted.routes["/out-0.png"] = (302, {"location": f"{elsewhere.url}/secret"}, b"")
    with pytest.raises(DownloadRefused, match="is not an allowed source"):
        gateway_for(trusted).download(f"{trusted.url}/out-0.png")
    assert trusted.hits == ["/out-0.png"]
    assert elsewhere.hits == []  # the request returned: a fetch, had there been one, is already recorded


def test_endless_redirects_are_refused(origins: tuple[Origin, Origin]) -> None:
    trusted, _ = origins
    trusted.routes["/loop.png"] = (302, {"location": "/loop.png"}, b"")
    with pytest.raises(DownloadRefused, match="redirects"):
        gateway_for(trusted).download(f"{trusted.url}/loop.png")
    assert len(trusted.hits) == 4  # the first request and three redirects


@pytest.mark.parametrize("headers", [{"content-type": "image/png"},
                                     {"content-type": "image/png", "transfer-encoding": "chunked"}],
                         ids=["declared", "chunked"])
def test_a_body_over_the_cap_is_refused(origins: tuple[Origin, Origin], headers: dict[str, str]) -> None:
    trusted, _ = origins
    trusted.routes["/big.png"] = (200, headers, b"x" * 20_000)
    with pytest.raises(DownloadRefused, match="larger than 10000 bytes"):
        gateway_for(trusted, max_bytes=10_000).download(f"{trusted.url}/big.png")


@pytest.mark.parametrize(("status", "headers"), [(404, {}), (500, {}), (300, {"location": "/out-0.png"}),
                                                (302, {}), (204, {})],
                         ids=["404", "500", "300", "302 without location", "204"])
def test_an_answer_that_is_not_an_output_nor_a_redirect_is_unavailable_not_refused(
        origins: tuple[Origin, Origin], status: int, headers: dict[str, str]) -> None:
    """Unavailable (the copy is retried while Replicate keeps the output), not refused (failed at
    once), and no body of such an answer is ever stored as the image."""
    trusted, _ = origins
    trusted.routes["/gone.png"] = (status, {"content-type": "image/png", **headers}, PNG if status != 204 else b"")
    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        gateway_for(trusted).download(f"{trusted.url}/gone.png")
    assert trusted.hits == ["/gone.png"]


def test_a_source_that_hangs_up_without_answering_is_unavailable(origins: tuple[Origin, Origin]) -> None:
    trusted, _ = origins
    trusted.hangups.add("/out-0.png")
    with pytest.raises(UpstreamUnavailable, match="could not download output"):
        gateway_for(trusted).download(f"{trusted.url}/out-0.png")


def test_a_redirect_whose_location_cannot_be_parsed_is_refused(origins: tuple[Origin, Origin]) -> None:
    trusted, _ = origins
    trusted.routes["/out-0.png"] = (302, {"location": "http://[::1"}, b"")
    with pytest.raises(DownloadRefused, match="location cannot be parsed"):
        gateway_for(trusted).download(f"{trusted.url}/out-0.png")


def test_a_compressed_body_is_refused_not_inflated(origins: tuple[Origin, Origin]) -> None:
    """Identity is asked for; a body sent compressed anyway could inflate far past the cap before
    it was counted (a few hundred bytes of nested gzip can hold hundreds of MB)."""
    trusted, _ = origins
    trusted.routes["/out-0.png"] = (200, {"content-type": "image/png", "content-encoding": "gzip"},
                                    gzip.compress(b"\0" * 1_000_000))
    with pytest.raises(DownloadRefused, match="content-encoding 'gzip'"):
        gateway_for(trusted, max_bytes=10_000).download(f"{trusted.url}/out-0.png")


def test_a_body_still_arriving_is_abandoned_at_the_deadline(origins: tuple[Origin, Origin]) -> None:
    """The deadline is checked as each part of the body arrives, not once a whole chunk is in: the
    source sends 1,000 of its 100,000 bytes and holds the rest; the download's clock (one second per
    look) passes the 1.5 s deadline at that first part, and the source sees the client leave. Each
    byte of a trickling source resets the read timeout, so only this check ends such a download.
    (With urllib3 before 2.3, which has no read1, the body is read in 8 KiB chunks and this fails.)"""
    trusted, _ = origins
    trusted.stalls["/out-0.png"] = (100_000, 1_000)
    ticks = itertools.count(0.0, 1.0)
    gateway = ReplicateGateway("r8_local", "http://127.0.0.1:9", clock=lambda: next(ticks),
                               downloads=DownloadPolicy.from_allow_list(trusted.url, timeout_seconds=1.5))
    with pytest.raises(UpstreamUnavailable, match=r"longer than 1\.5 s"):
        gateway.download(f"{trusted.url}/out-0.png")
    wait_for(lambda: trusted.abandoned == ["/out-0.png"], message="the source to see the client leave")


@pytest.mark.parametrize("url", ["http://[127.0.0.1/out.png", "http://u:p@{host}/out-0.png", "file:///etc/passwd",
                                 "//{host}/out-0.png"],
                         ids=["unparseable", "credentials", "file", "no scheme"])
def test_what_the_policy_cannot_admit_is_refused_before_any_request(origins: tuple[Origin, Origin], url: str) -> None:
    trusted, _ = origins
    trusted.routes["/out-0.png"] = (200, {"content-type": "image/png"}, PNG)
    with pytest.raises(DownloadRefused):
        gateway_for(trusted).download(url.format(host=trusted.url.removeprefix("http://")))
    assert trusted.hits == []


# --- the webhook, with a leaked signing secret -------------------------------------------------------
def started_generation(world: Harness, user: str, *, hold: bool) -> dict[str, Any]:
    """A generation whose prediction runs on the emulator (`hold`: and stays running)."""
    training_id = seed_training(world, user)
    wait_for(lambda: (t := world.repository().get_training(training_id)) is not None and t.status == "succeeded",
             message="the training webhook")
    if hold:
        world.emulator.prediction_seconds = 3600  # only a forged delivery will say it finished
    response = world.call("POST", "/generations", user=user, body={"prompt": "a portrait"})
    assert response.status_code == 202, response.text
    return dict(response.json()["generation"])


def test_a_signed_prediction_webhook_pointing_elsewhere_fails_the_copy_without_fetching(
        harness: Harness, origins: tuple[Origin, Origin]) -> None:
    _, elsewhere = origins
    elsewhere.routes["/internal.png"] = (200, {"content-type": "image/png"}, PNG)
    generation = started_generation(harness, "mallory-victim", hold=True)
    prediction = requests.get(f"{harness.emulator.url}/v1/predictions/{generation['replicate_prediction_id']}",
                              headers={"authorization": "Bearer r8_local"}, timeout=5).json()
    # Someone who holds the signing secret says the prediction succeeded, with an output of their choosing
    forged = {**prediction, "status": "succeeded", "output": [f"{elsewhere.url}/internal.png"]}
    response = harness.post_webhook("prediction", forged, query=f"generation_id={generation['id']}")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "DOWNLOAD_REFUSED"
    assert elsewhere.hits == []
    after = harness.call("GET", f"/generations/{generation['id']}", user="mallory-victim").json()["generation"]
    assert after["status"] == generation["status"] != "succeeded"  # unchanged: nothing was written
    assert after["outputs"] == []


def test_the_emulators_own_outputs_are_copied_locally(harness: Harness) -> None:
    """The local stack allows the emulator's origin (and only it): genuine outputs still arrive."""
    generation = started_generation(harness, "olivia", hold=False)
    done = wait_for(lambda: (g := harness.call("GET", f"/generations/{generation['id']}", user="olivia")
                             .json()["generation"])["status"] == "succeeded" and g, message="the copy")
    assert len(done["outputs"]) == 1
    assert harness.env("ReplicateWebhookFunction")["DOWNLOAD_ALLOWED_HOSTS"] == harness.emulator.url
