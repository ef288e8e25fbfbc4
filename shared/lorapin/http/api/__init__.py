"""The HTTP API's routes, one router per function, built by a factory so that each resolver (the
function's own, and the one `lorapin.http.openapi` documents every route with) gets its own.

A router is handed the function's services (`lorapin.runtime.Runtime` satisfies `Services`; the
local stack runs several functions in one process, each with its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lorapin.adapters.media import MediaStore
    from lorapin.adapters.secrets import ReplicateSecrets
    from lorapin.domain.limits import GenerationLimits
    from lorapin.services.account import AccountDeletion
    from lorapin.services.generation import Generations
    from lorapin.services.listings import Listings
    from lorapin.services.model_history import ModelHistory
    from lorapin.services.photo_library import PhotoLibrary
    from lorapin.services.training_cancel import TrainingCancel
    from lorapin.services.training_completion import TrainingCompletion
    from lorapin.services.training_start import Trainings


class Services(Protocol):
    @property
    def media(self) -> MediaStore: ...

    @property
    def secrets(self) -> ReplicateSecrets: ...

    def trainings(self) -> Trainings: ...

    def listings(self) -> Listings: ...

    def history(self) -> ModelHistory: ...

    def training_cancel(self) -> TrainingCancel: ...

    def photo_library(self) -> PhotoLibrary: ...

    def account_deletion(self) -> AccountDeletion: ...

    def generations(self, limits: GenerationLimits | None = None) -> Generations: ...

    def completion(self) -> TrainingCompletion: ...


ServicesOf = Callable[[], Services]


def documentation_only() -> Services:
    """The services of a router built only to be documented: never called."""
    raise RuntimeError("a router built for the OpenAPI document serves no request")
