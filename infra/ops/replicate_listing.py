"""What only the operator tools ask Replicate: whole lists (every version of a destination, every
training of the account), read page by page through the gateway the functions use."""

from __future__ import annotations

from lorapin.adapters.replicate_gateway import ReplicateGateway
from lorapin.domain.replicate_objects import InvalidReplicateObject, ReplicateTraining
from lorapin.domain.versions import ModelName


def version_ids(gateway: ReplicateGateway, model: ModelName, *, max_pages: int = 20) -> list[str]:
    """Every version id of a model, newest first, following the cursor (the client reads one page)."""
    path = f"/v1/models/{model.owner}/{model.name}/versions"
    return [str(v["id"]) for v in gateway.paged_results(path, max_pages=max_pages) if "id" in v]


def list_trainings(gateway: ReplicateGateway, *, max_pages: int = 50) -> list[ReplicateTraining]:
    """The account's trainings, newest first, following the cursor; unreadable entries are skipped."""
    trainings: list[ReplicateTraining] = []
    for item in gateway.paged_results("/v1/trainings", max_pages=max_pages):
        try:
            trainings.append(ReplicateTraining.parse(item))
        except InvalidReplicateObject:
            continue
    return trainings
