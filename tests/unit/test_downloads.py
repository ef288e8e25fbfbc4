"""Downloads only from Replicate: lorapin fetches a URL it was handed (a prediction's outputs) only
when it points at an allowed source, HTTPS unless a source says `http://` explicitly, on the
source's own port. The check is pure (`lorapin.domain.downloads`); these tests need no network."""

from __future__ import annotations

import pytest

from infra.local.template import load_template
from lorapin.adapters.replicate_gateway import ReplicateGateway
from lorapin.adapters.settings import Settings
from lorapin.domain.downloads import DEFAULT_ALLOWED_SOURCES, DownloadPolicy, DownloadTarget
from lorapin.domain.errors import DownloadRefused

REPLICATE = DownloadPolicy.from_allow_list(DEFAULT_ALLOWED_SOURCES)
LOCAL = DownloadPolicy.from_allow_list("http://127.0.0.1:3001")


def target(scheme: str, host: str, port: int | None = None, *, userinfo: bool = False) -> DownloadTarget:
    return DownloadTarget(scheme=scheme, host=host, port=port, has_userinfo=userinfo)


@pytest.mark.parametrize("allowed", [
    target("https", "replicate.delivery"),
    target("https", "pbxt.replicate.delivery"),
    target("https", "weights.replicate.delivery"),
    target("https", "a.b.replicate.delivery"),
    target("HTTPS", "Replicate.Delivery"),
    target("https", "replicate.delivery", 443),
])
def test_replicates_delivery_hosts_over_https_are_allowed_by_default(allowed: DownloadTarget) -> None:
    REPLICATE.require_allowed(allowed)


@pytest.mark.parametrize(("refused", "reason"), [
    (target("http", "replicate.delivery"), "http://replicate.delivery is not an allowed source"),
    (target("https", "evil.example"), "https://evil.example is not an allowed source"),
    (target("https", "replicate.delivery.evil.example"), "is not an allowed source"),
    (target("https", "evilreplicate.delivery"), "is not an allowed source"),
    (target("https", "replicate.delivery", 8443), "https://replicate.delivery:8443 is not an allowed source"),
    (target("https", "replicate.delivery", userinfo=True), "a URL with credentials in it"),
    (target("file", ""), "file:// is not an allowed source"),
    (target("https", "169.254.169.254"), "is not an allowed source"),
])
def test_anything_else_is_refused_with_the_reason(refused: DownloadTarget, reason: str) -> None:
    with pytest.raises(DownloadRefused) as raised:
        REPLICATE.require_allowed(refused)
    assert reason in raised.value.message
    assert raised.value.code == "DOWNLOAD_REFUSED"
    assert raised.value.status == 422


def test_http_is_allowed_only_for_a_source_that_says_so_and_only_on_its_port() -> None:
    LOCAL.require_allowed(target("http", "127.0.0.1", 3001))
    for refused in (target("http", "127.0.0.1", 3002), target("https", "127.0.0.1", 3001),
                    target("http", "127.0.0.1"), target("http", "localhost", 3001)):
        with pytest.raises(DownloadRefused):
            LOCAL.require_allowed(refused)


@pytest.mark.parametrize("entry", ["", "http://", "*.", "ftp://replicate.delivery", "https://replicate.delivery/path",
                                   "replicate.delivery:port", "user@replicate.delivery", "*"])
def test_a_source_that_cannot_be_understood_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ValueError, match="DOWNLOAD_ALLOWED_HOSTS"):
        DownloadPolicy.from_allow_list(entry)


def test_a_bad_allow_list_stops_the_function_at_cold_start() -> None:
    env = {"MODELS_TABLE_NAME": "models", "TRAININGS_TABLE_NAME": "trainings", "VERSIONS_TABLE_NAME": "versions",
           "GENERATIONS_TABLE_NAME": "gens", "STATE_TABLE_NAME": "state",
           "PHOTOS_TABLE_NAME": "photos", "PHOTO_SETS_TABLE_NAME": "photo-sets",
           "EVENT_BUS_NAME": "bus",
           "MEDIA_BUCKET_NAME": "media", "REPLICATE_SECRET_ARN": "arn:secret", "REPLICATE_OWNER": "acme",
           "TRAINER_VERSION": "e" * 64}
    assert Settings.from_env(env).download_allowed_hosts == DEFAULT_ALLOWED_SOURCES
    with pytest.raises(RuntimeError, match="DOWNLOAD_ALLOWED_HOSTS"):
        Settings.from_env({**env, "DOWNLOAD_ALLOWED_HOSTS": "https://replicate.delivery/outputs"})


def test_the_template_default_is_the_settings_default() -> None:
    template = load_template()
    assert template["Parameters"]["DownloadAllowedHosts"]["Default"] == DEFAULT_ALLOWED_SOURCES
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["DOWNLOAD_ALLOWED_HOSTS"] == {"Ref": "DownloadAllowedHosts"}


@pytest.mark.parametrize("url", ["https://evil.example/out-0.png", "http://replicate.delivery/out-0.png",
                                 "https://replicate.delivery@evil.example/out-0.png",
                                 "https://replicate.delivery:8443/out-0.png", "file:///etc/passwd"])
def test_the_gateway_refuses_before_connecting(url: str) -> None:
    """Sockets are off in unit tests: an attempt to connect would fail differently."""
    gateway = ReplicateGateway("r8_unit", "https://api.replicate.com", downloads=REPLICATE)
    with pytest.raises(DownloadRefused):
        gateway.download(url)
