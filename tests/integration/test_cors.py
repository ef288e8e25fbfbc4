"""CORS on the local HTTP API, as API Gateway's HTTP API answers it when the template configures
CORS (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html): a preflight
`OPTIONS` with `Origin` and `Access-Control-Request-Method` is answered by the API itself, without
a route, an authorizer or a function; an allowed origin's requests get the configured headers on
the function's answer. Locally the allowed origin is the local API's own URL (the console it serves)."""

from __future__ import annotations

import requests

from infra.local.http_api import CorsConfig
from infra.local.template import Resolver, Template
from tests.harness import Harness

STRANGER = "https://evil.example"


def preflight(world: Harness, path: str, origin: str, method: str = "POST") -> requests.Response:
    return requests.options(f"{world.api.url}{path}", timeout=10, headers={
        "origin": origin, "access-control-request-method": method,
        "access-control-request-headers": "authorization,content-type"})


def test_a_preflight_from_the_allowed_origin_is_answered_without_a_function(harness: Harness) -> None:
    origin = harness.api.url
    response = preflight(harness, "/generations", origin)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert {"GET", "POST"} <= set(response.headers["access-control-allow-methods"].split(","))
    assert {"authorization", "content-type"} <= set(response.headers["access-control-allow-headers"].split(","))
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.content == b""


def test_a_preflight_from_another_origin_gets_no_cors_headers(harness: Harness) -> None:
    response = preflight(harness, "/generations", STRANGER)
    assert response.status_code == 204
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_an_options_request_that_is_not_a_preflight_is_routed_like_any_other(harness: Harness) -> None:
    response = requests.options(f"{harness.api.url}/generations", headers={"origin": harness.api.url}, timeout=10)
    assert response.status_code == 404  # no OPTIONS route: API Gateway's own 404
    assert response.json() == {"message": "Not Found"}


def test_the_allowed_origins_answers_carry_cors_headers_and_others_do_not(harness: Harness) -> None:
    allowed = harness.call("GET", "/model", user="cora", headers={"origin": harness.api.url})
    assert allowed.status_code == 404  # the function answered: no model yet
    assert allowed.headers["access-control-allow-origin"] == harness.api.url
    assert "retry-after" in allowed.headers["access-control-expose-headers"].split(",")
    stranger = harness.call("GET", "/model", user="cora", headers={"origin": STRANGER})
    assert stranger.status_code == 404
    assert "access-control-allow-origin" not in stranger.headers
    same_origin = harness.call("GET", "/model", user="cora")  # no Origin header: not a CORS request
    assert "access-control-allow-origin" not in same_origin.headers


def cors_with(origins: list[str]) -> CorsConfig | None:
    template = Template()
    params = {**template.parameter_defaults(), "CorsAllowedOrigins": origins}
    resolver = Resolver(params, {}, {}, template.document["Conditions"], {"AWS::NoValue": ""})
    return CorsConfig.from_template(template, resolver)


def test_without_allowed_origins_the_api_has_no_cors_at_all() -> None:
    """The template's default (and prod's): API Gateway gets no CORS configuration, so a preflight
    is an OPTIONS request like any other, which no route serves."""
    assert cors_with([]) is None
    configured = cors_with(["https://console.example.com"])
    assert configured is not None
    assert configured.allow_origins == ("https://console.example.com",)
    assert configured.preflight_headers("https://console.example.com")["access-control-allow-origin"] == \
        "https://console.example.com"
    assert configured.preflight_headers(STRANGER) == {}
