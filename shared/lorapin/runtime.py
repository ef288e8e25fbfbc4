"""The composition root: the one place that builds a function's collaborators.

Functions and tests ask a `Runtime` for what they need (`runtime.generations()`,
`runtime.completion()`, ...) instead of assembling services by hand. Nothing here connects anywhere
or reads a secret at import time. Each function makes at init, with `prepare`, the clients its
requests use (so that its first request does not pay for them), all from the process's one AWS
session (`lorapin.adapters.aws`); anything else is made on first use. All are kept for the warm
container, and made again after a SnapStart restore.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Literal

from lorapin.adapters.settings import Settings, get_settings
from lorapin.domain import clock
from lorapin.observability import trace_replicate_calls

if TYPE_CHECKING:
    from lorapin.adapters.event_bus import EventPublisher, EventsClient
    from lorapin.adapters.media import MediaStore
    from lorapin.adapters.repository import Repository
    from lorapin.adapters.secrets import ReplicateSecrets
    from lorapin.adapters.tables import TrainingItem
    from lorapin.domain.limits import GenerationLimits
    from lorapin.services.account import AccountDeletion
    from lorapin.services.generation import Generations
    from lorapin.services.listings import Listings
    from lorapin.services.model_history import ModelHistory
    from lorapin.services.photo_inspection import PhotoInspections
    from lorapin.services.photo_library import PhotoLibrary
    from lorapin.services.ports import Functions, Replicate
    from lorapin.services.reconciler import Reconciler, ReconcilerLimits
    from lorapin.services.training_cancel import TrainingCancel
    from lorapin.services.training_completion import TrainingCompletion
    from lorapin.services.training_start import Trainings

Need = Literal["dynamodb", "events", "s3", "secrets", "lambda", "replicate"]
API_URL_MAX_AGE_SECONDS = 3600
INLINE_CALL_SECONDS = 12  # a synchronous call to the photo inspector (its own budget is 8 s)


class Runtime:
    """`settings` say where everything is. The outside world can be handed in instead of built
    (tests give an in-memory Replicate and a recording bus); by default each client is made on
    first use from the settings."""

    def __init__(self, settings: Settings, *, replicate: Replicate | None = None,
                 events_client: EventsClient | None = None, functions: Functions | None = None) -> None:
        self.settings = settings
        if settings.clock != clock.SYSTEM:  # the local stack's accelerated clock (make bench)
            clock.use(clock.Clock.parse(settings.clock))
        self._given_replicate = replicate
        self._given_events_client = events_client
        self._given_functions = functions
        self._gateway: tuple[str, Replicate] | None = None  # (the token it was built with, the gateway)
        self._prepared: tuple[Need, ...] = ()

    # --- adapters --------------------------------------------------------------------------------
    @cached_property
    def repository(self) -> Repository:
        from lorapin.adapters.repository import Repository

        return Repository(self.settings)

    @cached_property
    def publisher(self) -> EventPublisher:
        from lorapin.adapters.event_bus import EventPublisher

        return EventPublisher(self._given_events_client or self._boto_client("events"), self.settings.event_bus)

    @property
    def secrets(self) -> ReplicateSecrets:
        """Read through Powertools' cache on every call, so a rotated secret is picked up."""
        from lorapin.adapters.aws import share_with_powertools
        from lorapin.adapters.secrets import load_replicate_secrets

        share_with_powertools("secrets", self.settings.aws_region)  # the provider's client: the shared session's
        return load_replicate_secrets(self.settings.replicate_secret_arn)

    @property
    def replicate(self) -> Replicate:
        """The gateway for the current API token: kept while the token is the same, rebuilt when a
        rotation reaches the secret's cache (the same age as the signing secret's)."""
        if self._given_replicate is not None:
            return self._given_replicate
        from lorapin.adapters.replicate_gateway import ReplicateGateway

        token = self.secrets.api_token
        if self._gateway is None or self._gateway[0] != token:
            self._gateway = (token, ReplicateGateway(token, self.settings.replicate_base_url,
                                                     downloads=self.settings.download_policy(),
                                                     timeout_seconds=self.settings.replicate_timeout_seconds))
        return self._gateway[1]

    @cached_property
    def media(self) -> MediaStore:
        from lorapin.adapters.media import MediaStore

        return MediaStore(self._boto_client("s3"), self.settings.media_bucket)

    @cached_property
    def functions(self) -> Functions:
        """lorapin's other functions (Lambda Invoke): synchronous calls get one attempt and a read
        timeout that fits the caller's budget; asynchronous starts are retried by botocore."""
        if self._given_functions is not None:
            return self._given_functions
        from botocore.config import Config

        from lorapin.adapters import aws
        from lorapin.adapters.functions import LambdaFunctions

        sync = aws.client("lambda", self.settings.aws_region,
                          config=Config(read_timeout=INLINE_CALL_SECONDS, retries={"total_max_attempts": 1}))
        return LambdaFunctions(sync, self._boto_client("lambda"))

    def prepare(self, *needs: Need) -> None:
        """Make now, at the cold start, the clients a function's requests need (no request is
        sent): otherwise the first request makes them. "replicate" imports the Replicate client and
        httpx, patched for X-Ray; the gateway itself needs the secret's token, which a request reads."""
        self._prepared = tuple(dict.fromkeys((*self._prepared, *needs)))
        for need in needs:
            if need == "dynamodb":
                from lorapin.adapters.tables import bind_tables, connection

                bind_tables(self.settings)  # (not the repository: the photo inspector has no use for it)
                _ = connection(self.settings.aws_region, self.settings.aws_endpoint_url).client
            elif need == "events":
                _ = self.publisher
            elif need == "s3":
                _ = self.media
            elif need == "secrets":
                import lorapin.adapters.secrets  # (and the checks a secret's value gets)
                from lorapin.adapters.aws import share_with_powertools

                share_with_powertools("secrets", self.settings.aws_region)
            elif need == "lambda":
                _ = self.functions
            elif need == "replicate" and self._given_replicate is None:
                import httpx  # noqa: F401  (the client's transport)
                import replicate  # noqa: F401

                import lorapin.adapters.replicate_gateway  # noqa: F401  (the gateway)
                trace_replicate_calls()

    # --- services --------------------------------------------------------------------------------
    def generations(self, limits: GenerationLimits | None = None) -> Generations:
        """`limits`: the deployment's (parameters) unless given (tests of backlogs beyond them)."""
        from lorapin.domain.limits import GenerationLimits
        from lorapin.services.generation import Generations

        limits = limits or GenerationLimits(self.settings.generations_per_minute, self.settings.generations_in_flight)
        return Generations(self.repository, lambda: self.replicate, lambda: self.media, self.prediction_webhook_url,
                           limits)

    def trainings(self) -> Trainings:
        from lorapin.services.training_start import Trainings

        return Trainings(self.settings, self.repository, lambda: self.replicate, lambda: self.media,
                         self.training_webhook_url, self.publisher, lambda: self.functions)

    def photo_library(self) -> PhotoLibrary:
        from lorapin.adapters.photo_records import PhotoRecords
        from lorapin.services.photo_library import PhotoLibrary

        return PhotoLibrary(self.repository, PhotoRecords(self.settings), lambda: self.media)

    def photo_inspections(self) -> PhotoInspections:
        from lorapin.adapters.photo_records import PhotoRecords
        from lorapin.services.photo_inspection import PhotoInspections

        return PhotoInspections(PhotoRecords(self.settings), lambda: self.media)

    def completion(self) -> TrainingCompletion:
        from lorapin.services.training_completion import TrainingCompletion

        return TrainingCompletion(self.repository, self.publisher)

    def account_deletion(self) -> AccountDeletion:
        from lorapin.services.account import AccountDeletion

        return AccountDeletion(self.repository, lambda: self.replicate, lambda: self.media, self.publisher)

    def listings(self) -> Listings:
        from lorapin.services.listings import Listings

        return Listings(self.repository)

    def training_cancel(self) -> TrainingCancel:
        from lorapin.services.training_cancel import TrainingCancel

        return TrainingCancel(self.repository, lambda: self.replicate, self.completion(), self.publisher)

    def history(self) -> ModelHistory:
        from lorapin.services.model_history import ModelHistory

        return ModelHistory(self.repository, self.publisher)

    def reconciler(self, limits: ReconcilerLimits | None = None) -> Reconciler:
        """The reconciler, with the deployment's budgets unless `limits` are given (tests)."""
        from datetime import timedelta

        from lorapin.services.reconciler import Reconciler, ReconcilerLimits

        settings = self.settings
        limits = limits or ReconcilerLimits(time_budget=timedelta(seconds=settings.reconcile_time_budget_seconds),
                                            call_budget=settings.reconcile_call_budget,
                                            drift_models=settings.reconcile_drift_checks)
        return Reconciler(self.repository, self.completion(), self.generations(), lambda: self.replicate,
                          limits=limits)

    # --- URLs ------------------------------------------------------------------------------------
    def api_base_url(self) -> str:
        """The public URL of our HTTP API, for the webhook URLs we hand to Replicate."""
        if self.settings.public_api_url:
            return self.settings.public_api_url
        from aws_lambda_powertools.utilities import parameters

        from lorapin.adapters.aws import share_with_powertools

        share_with_powertools("ssm", self.settings.aws_region)
        value = parameters.get_parameter(self.settings.api_url_parameter, max_age=API_URL_MAX_AGE_SECONDS)
        return str(value).rstrip("/")

    def training_webhook_url(self, training: TrainingItem) -> str:
        """What the webhook should find rides in the URL (`ExpectedTraining`, unsigned): it is
        written on condition that it holds, and read and decided again when it does not."""
        from urllib.parse import urlencode

        from lorapin.domain.completion import ExpectedTraining

        expected = ExpectedTraining(training.training_id, training.user_id, int(training.seq),
                                    int(training.image_count), training.previous_version_id)
        return f"{self.api_base_url()}/webhooks/replicate/training?{urlencode(expected.to_query())}"

    def prediction_webhook_url(self, generation_id: str) -> str:
        return f"{self.api_base_url()}/webhooks/replicate/prediction?generation_id={generation_id}"

    def _boto_client(self, service: str) -> Any:
        from lorapin.adapters import aws

        return aws.client(service, self.settings.aws_region)

    def refresh_after_restore(self) -> None:
        """Lambda SnapStart resumed this process from a snapshot, possibly hours old and shared by
        many instances: drop every client (their connections belong to the snapshot), the cached
        secrets (they may have rotated since) and the Replicate gateway; each is rebuilt on first use."""
        from aws_lambda_powertools.utilities import parameters

        from lorapin.adapters import aws, tables

        for name in ("repository", "publisher", "media", "functions"):
            self.__dict__.pop(name, None)
        self._gateway = None
        parameters.clear_caches()
        tables.forget_connections()
        aws.forget_session()
        self.prepare(*self._prepared)  # what the init had made, made again before the first request


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    runtime = Runtime(get_settings())
    _register_after_restore(runtime)
    return runtime


def _register_after_restore(runtime: Runtime) -> None:
    """With SnapStart on (template parameter `SnapStart`), refresh what the snapshot froze. The hook
    library exists only in Lambda's Python runtime (3.12+); elsewhere there is nothing to register."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return
    register_after_restore(runtime.refresh_after_restore)


def reset_runtime() -> None:
    """Forget settings and clients (tests, and the local stack between function loads), Powertools'
    parameter providers included: each keeps the client, and so the endpoint, it was made with."""
    from aws_lambda_powertools.utilities import parameters

    get_settings.cache_clear()
    get_runtime.cache_clear()
    parameters.clear_caches()
