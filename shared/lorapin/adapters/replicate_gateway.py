"""Everything lorapin asks of Replicate, over the real `replicate` client.

POSTs are never retried by the client, and a retried POST can create a duplicate (no idempotency
key), so a create is retried only when Replicate refused it (429) or it surely never left (a connect
error), with bounded backoff, and then raises `UpstreamUnavailable` (503 + Retry-After). A create
that timed out or answered 5xx may have created the object: that raises `CreateOutcomeUnknown`, and
the caller looks the object up (`find_training`, `find_prediction`) before it abandons anything.
Webhook bodies and trainings are parsed with our tolerant models (`aborted` breaks the client's).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from lorapin.domain.downloads import DEFAULT_ALLOWED_SOURCES, DownloadPolicy, DownloadTarget
from lorapin.domain.errors import DownloadRefused, UpstreamUnavailable
from lorapin.domain.replicate_objects import ReplicatePrediction, ReplicateTraining
from lorapin.domain.versions import ModelName, VersionRef

if TYPE_CHECKING:
    import replicate
    import urllib3
    from urllib3.util import Url

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0  # the webhook must answer within seconds; Replicate answers faster
RETRY_DELAYS_SECONDS = (0.25, 0.75, 1.5)  # bounded: the caller's API request must still finish
REPLICATE_DOWNLOADS = DownloadPolicy.from_allow_list(DEFAULT_ALLOWED_SOURCES)
DOWNLOAD_CHUNK_BYTES = 64 * 1024
FALLBACK_CHUNK_BYTES = 8 * 1024  # urllib3 before 2.3 (no read1): the deadline is checked once per chunk
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
VERSION_PAGES = 100  # pages of one destination's versions at most: thousands, far beyond one user's trainings


class CreateOutcomeUnknown(UpstreamUnavailable):
    """A create call timed out or failed on Replicate's side: the object may exist. Look it up."""


class ReplicateRejected(Exception):
    """Replicate answered a 4xx other than 429: retrying will not help."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"Replicate answered {status}: {detail}")
        self.status = status
        self.detail = detail


class ReplicateGateway:
    def __init__(self, api_token: str, base_url: str, *, sleep: Callable[[float], None] = time.sleep,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS,
                 timeout_seconds: float = READ_TIMEOUT_SECONDS,
                 downloads: DownloadPolicy = REPLICATE_DOWNLOADS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api_token = api_token
        self._base_url = base_url.rstrip("/")
        self._client: replicate.Client | None = None
        self._sleep = sleep
        self._retry_delays = retry_delays
        self._timeout = timeout_seconds
        self._downloads = downloads  # where `download` may fetch from (lorapin.domain.downloads)
        self._clock = clock  # what a download's deadline is measured on

    @property
    def client(self) -> replicate.Client:
        if self._client is None:
            import httpx
            import replicate

            from lorapin.observability import trace_replicate_calls

            trace_replicate_calls()  # patches httpx for X-Ray: here, as the first path that calls Replicate
            self._client = replicate.Client(
                api_token=self._api_token, base_url=self._base_url,
                timeout=httpx.Timeout(self._timeout, connect=CONNECT_TIMEOUT_SECONDS))
        return self._client

    # --- predictions -----------------------------------------------------------------------------
    def create_prediction(self, version: VersionRef, input: dict[str, Any], webhook: str) -> ReplicatePrediction:
        """Create a prediction pinned to exactly `version` (R1), never to a model's latest."""
        prediction = self._post(lambda: self.client.predictions.create(
            version=version.ref, input=input, webhook=webhook, webhook_events_filter=["completed"]))
        return ReplicatePrediction(id=prediction.id, status=prediction.status, version=version.id)

    def get_prediction(self, prediction_id: str) -> ReplicatePrediction:
        response = self._call(lambda: self.client._request("GET", f"/v1/predictions/{prediction_id}"))
        return ReplicatePrediction.parse(response.json())

    def cancel_prediction(self, prediction_id: str) -> None:
        self._call(lambda: self.client._request("POST", f"/v1/predictions/{prediction_id}/cancel"))

    # --- trainings and models --------------------------------------------------------------------
    def get_training(self, training_id: str) -> ReplicateTraining:
        response = self._call(lambda: self.client._request("GET", f"/v1/trainings/{training_id}"))
        return ReplicateTraining.parse(response.json())

    def create_training(self, *, trainer_model: str, trainer_version: str, destination: ModelName,
                        input: dict[str, Any], webhook: str) -> ReplicateTraining:
        training = self._post(lambda: self.client.trainings.create(
            model=trainer_model, version=trainer_version, input=input, destination=str(destination),
            webhook=webhook, webhook_events_filter=["completed"]))
        return ReplicateTraining.parse({"id": training.id, "status": training.status,
                                                 "model": training.model, "version": training.version})

    def cancel_training(self, training_id: str) -> None:
        self._call(lambda: self.client._request("POST", f"/v1/trainings/{training_id}/cancel"))

    def model_exists(self, model: ModelName) -> bool:
        try:
            self._call(lambda: self.client._request("GET", f"/v1/models/{model.owner}/{model.name}"))
        except ReplicateRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_model(self, model: ModelName, *, hardware: str = "gpu-h100", description: str = "") -> None:
        self._post(lambda: self.client.models.create(owner=model.owner, name=model.name, visibility="private",
                                                     hardware=hardware, description=description))

    def latest_version_id(self, model: ModelName) -> str | None:
        response = self._call(lambda: self.client._request("GET", f"/v1/models/{model.owner}/{model.name}"))
        latest = response.json().get("latest_version") or {}
        return latest.get("id") if isinstance(latest, dict) else None

    def version_ids(self, model: ModelName) -> list[str]:
        """Every version of `model`, newest first (following the list's pages)."""
        versions = self.paged_results(f"/v1/models/{model.owner}/{model.name}/versions", max_pages=VERSION_PAGES)
        return [str(version["id"]) for version in versions if version.get("id")]

    def delete_version(self, model: ModelName, version_id: str) -> None:
        """202: Replicate deletes the version (and its predictions' outputs) asynchronously."""
        path = f"/v1/models/{model.owner}/{model.name}/versions/{version_id}"
        self._call(lambda: self.client._request("DELETE", path))

    def delete_model(self, model: ModelName) -> None:
        """204; refused while the model has versions."""
        self._call(lambda: self.client._request("DELETE", f"/v1/models/{model.owner}/{model.name}"))

    def download(self, url: str) -> tuple[bytes, str]:
        """Fetch a prediction output before Replicate deletes it (outputs live for an hour), only from
        the allowed sources (`lorapin.domain.downloads`): each hop of a redirect is checked before it
        is requested, the body is capped as it arrives and the whole download has a deadline. A
        refusal raises `DownloadRefused` without fetching; a failure of an allowed source (any answer
        but 200 or a redirect, no answer, too slow), `UpstreamUnavailable`.

        Over urllib3, botocore's own HTTP client and so loaded already: the webhook function, which
        downloads but calls no Replicate API, then never imports httpx (~11 ms of its cold start).
        URLs are parsed by urllib3's parser, the one that parses them again to send the request, so
        what is checked is what is requested. Bodies are asked for and taken as sent (identity): an
        image gains nothing from compression, and a compressed body would be inflated before the
        cap could count it. TLS trusts the certificates botocore trusts."""
        import urllib3
        from botocore.httpsession import get_cert_path
        from urllib3.exceptions import HTTPError

        from lorapin.observability import tracer

        policy = self._downloads
        deadline = self._clock() + policy.timeout_seconds
        # A pool per download, as the client per download before: no connection outlives it.
        with tracer.provider.in_subsegment("## download output"), \
                urllib3.PoolManager(retries=False, ca_certs=get_cert_path(True)) as pool:
            for _ in range(policy.max_redirects + 1):
                target = _allowed(url, policy)
                remaining = self._remaining(deadline, policy)
                timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, remaining),
                                          read=min(READ_TIMEOUT_SECONDS, remaining))
                try:
                    response = pool.request("GET", target.url, headers={"accept-encoding": "identity"},
                                            redirect=False, preload_content=False, decode_content=False,
                                            timeout=timeout)
                    try:
                        if response.status in REDIRECT_STATUSES and response.headers.get("location"):
                            url = _redirect(target.url, response.headers["location"])
                            continue
                        if response.status != 200:  # 204, 206 and the like are no image either
                            raise UpstreamUnavailable(f"could not download output {url}: HTTP {response.status}")
                        return self._read_capped(response, policy, deadline), response.headers.get(
                            "content-type", "application/octet-stream")
                    finally:
                        response.close()  # an unread or refused body: its connection is not reused
                except HTTPError as exc:
                    raise UpstreamUnavailable(f"could not download output {url}: {exc}") from exc
        raise DownloadRefused(f"Refused to follow more than {policy.max_redirects} redirects for one output.")

    def _read_capped(self, response: urllib3.BaseHTTPResponse, policy: DownloadPolicy, deadline: float) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadRefused(f"Refused an output sent with content-encoding {encoding!r} (identity was asked).")
        declared = response.headers.get("content-length", "")
        if declared.isdigit():
            policy.refuse_size(int(declared))
        # read1 (urllib3 2.3+) returns what has arrived, so the deadline is checked as data comes in
        # however slowly it trickles; older urllib3 waits for whole chunks, kept small for that reason.
        read1 = getattr(response, "read1", None)
        pieces = iter(lambda: read1(DOWNLOAD_CHUNK_BYTES), b"") if read1 else response.stream(FALLBACK_CHUNK_BYTES)
        chunks, size = [], 0
        for chunk in pieces:
            size += len(chunk)
            policy.refuse_size(size)
            self._remaining(deadline, policy)
            chunks.append(chunk)
        return b"".join(chunks)

    def _remaining(self, deadline: float, policy: DownloadPolicy) -> float:
        """Seconds left before the download's deadline (`UpstreamUnavailable` once it has passed)."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise UpstreamUnavailable(f"the output took longer than {policy.timeout_seconds} s to download")
        return remaining

    # --- error handling --------------------------------------------------------------------------
    def _post(self, send: Callable[[], T]) -> T:
        """A create call: retried only when Replicate refused it or it never left this machine."""
        import httpx
        from replicate.exceptions import ReplicateError

        for delay in (*self._retry_delays, None):
            try:
                return send()
            except ReplicateError as exc:
                if exc.status != 429 and (exc.status is None or exc.status < 500):
                    raise ReplicateRejected(exc.status, exc.detail or str(exc)) from exc
                if exc.status != 429:  # a 5xx may have created it: don't repeat, look it up
                    raise CreateOutcomeUnknown(f"Replicate answered {exc.status}: {exc.detail}",
                                               retry_after_seconds=10) from exc
                if delay is None:
                    raise UpstreamUnavailable(f"Replicate refused the call: {exc.detail}",
                                              retry_after_seconds=10) from exc
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached Replicate
                if delay is None:
                    raise UpstreamUnavailable(f"Replicate is unreachable: {exc}", retry_after_seconds=10) from exc
            except httpx.HTTPError as exc:  # sent, but no answer: it may have been created
                raise CreateOutcomeUnknown(f"Replicate did not answer: {exc!r}", retry_after_seconds=10) from exc
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _call(send: Callable[[], T]) -> T:
        """A read (the client's transport already retries GETs on 429/503/504)."""
        import httpx
        from replicate.exceptions import ReplicateError

        try:
            return send()
        except ReplicateError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                raise ReplicateRejected(exc.status, exc.detail or str(exc)) from exc
            raise UpstreamUnavailable(f"Replicate answered {exc.status}: {exc.detail}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Replicate did not answer: {exc}") from exc

    # --- lists ---------------------------------------------------------------------------------------
    def recent(self, kind: str, since: datetime, *, max_pages: int) -> tuple[list[dict[str, Any]], bool]:
        """The account's `kind` ("trainings" or "predictions") created since `since`, newest first
        (100 a page), and whether the listing reached back that far (False: the page budget ran out)."""
        from functools import partial

        found: list[dict[str, Any]] = []
        path = f"/v1/{kind}"
        for _ in range(max_pages):
            page = self._call(partial(self.client._request, "GET", path)).json()
            for item in page.get("results", []):
                if not isinstance(item, dict):
                    continue
                created = _created_at(item)
                if created is not None and created < since:
                    return found, True
                found.append(item)
            next_url = page.get("next")
            if not next_url:
                return found, True
            path = next_url.split(self._base_url, 1)[-1]
        return found, False

    def find_training(self, training_id: str, since: datetime, *, max_pages: int = 3) -> ReplicateTraining | None:
        """The training whose input names our `training_id` (its zip's key holds it), created
        since `since`; None when certainly absent; `UpstreamUnavailable` when that is not known."""
        items, complete = self.recent("trainings", since, max_pages=max_pages)
        for item in items:
            if training_id in str((item.get("input") or {}).get("input_images", "")):
                return ReplicateTraining.parse(item)
        if not complete:
            raise UpstreamUnavailable(f"could not confirm whether training {training_id} was created")
        return None

    def find_prediction(self, version: VersionRef, input: dict[str, Any], since: datetime, *,
                        max_pages: int = 3) -> ReplicatePrediction | None:
        """The prediction of exactly this version and input (the seed makes it unique), created since
        `since`; None when certainly absent; `UpstreamUnavailable` when that is not known."""
        items, complete = self.recent("predictions", since, max_pages=max_pages)
        for item in items:
            sent = item.get("input") or {}
            if item.get("version") == version.id and all(sent.get(k) == v for k, v in input.items()):
                return ReplicatePrediction.parse(item)
        if not complete:
            raise UpstreamUnavailable("could not confirm whether the prediction was created")
        return None

    def paged_results(self, path: str, *, max_pages: int) -> Iterator[dict[str, Any]]:
        """The `results` of a cursor-paginated list, page after page (at most `max_pages`), newest first."""
        from functools import partial

        next_path: str | None = path
        for _ in range(max_pages):
            if not next_path:
                return
            page = self._call(partial(self.client._request, "GET", next_path)).json()
            yield from (item for item in page.get("results", []) if isinstance(item, dict))
            next_url = page.get("next")
            next_path = next_url.split(self._base_url, 1)[-1] if next_url else None


def _created_at(item: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(item["created_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def _allowed(url: str, policy: DownloadPolicy) -> Url:
    """`url` parsed as urllib3 will send it, if the policy admits it (`DownloadRefused` if not)."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        target = parse_url(url)
    except LocationParseError as exc:
        raise DownloadRefused("Refused to download a URL that cannot be parsed.") from exc
    policy.require_allowed(DownloadTarget(target.scheme or "", target.host or "", target.port,
                                          has_userinfo=target.auth is not None))
    return target


def _redirect(current: str, location: str) -> str:
    from urllib.parse import urljoin

    try:
        return urljoin(current, location)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise DownloadRefused("Refused to follow a redirect whose location cannot be parsed.") from exc

