"""The collaborators a function needs, built once per container and only when first used.

Cold start matters: nothing here connects anywhere or reads a secret at import time; each
property builds its client on first use and keeps it for the warm container.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from lorapin.settings import Settings, get_settings

if TYPE_CHECKING:
    from lorapin.events import EventPublisher
    from lorapin.media import MediaStore
    from lorapin.replicate_gateway import ReplicateGateway
    from lorapin.repository import Repository
    from lorapin.secrets import ReplicateSecrets

API_URL_MAX_AGE_SECONDS = 3600


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def repository(self) -> Repository:
        from lorapin.repository import Repository

        return Repository(self.settings)

    @cached_property
    def publisher(self) -> EventPublisher:
        from lorapin.events import EventPublisher

        return EventPublisher(self._boto_client("events"), self.settings.event_bus)

    @property
    def secrets(self) -> ReplicateSecrets:
        """Read through Powertools' cache on every call, so a rotated secret is picked up."""
        from lorapin.secrets import load_replicate_secrets

        return load_replicate_secrets(self.settings.replicate_secret_arn)

    @cached_property
    def replicate(self) -> ReplicateGateway:
        from lorapin.replicate_gateway import ReplicateGateway

        return ReplicateGateway(self.secrets.api_token, self.settings.replicate_base_url)

    @cached_property
    def media(self) -> MediaStore:
        from lorapin.media import MediaStore

        return MediaStore(self._boto_client("s3"), self.settings.media_bucket)

    def api_base_url(self) -> str:
        """The public URL of our HTTP API, for the webhook URLs we hand to Replicate."""
        if self.settings.public_api_url:
            return self.settings.public_api_url
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_parameter(self.settings.api_url_parameter, max_age=API_URL_MAX_AGE_SECONDS)
        return str(value).rstrip("/")

    def training_webhook_url(self, training_id: str) -> str:
        return f"{self.api_base_url()}/webhooks/replicate/training?training_id={training_id}"

    def prediction_webhook_url(self, generation_id: str) -> str:
        return f"{self.api_base_url()}/webhooks/replicate/prediction?generation_id={generation_id}"

    def _boto_client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.settings.aws_region)  # type: ignore[call-overload]


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    return Runtime(get_settings())


def reset_runtime() -> None:
    """Forget settings and clients (tests, and the local stack between function loads)."""
    get_settings.cache_clear()
    get_runtime.cache_clear()
