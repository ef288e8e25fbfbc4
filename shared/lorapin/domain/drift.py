"""R9: is the stored current version the one Replicate says is the destination's latest?

Pure: the audit command and the reconciler both call it with what they read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lorapin.domain.statuses import ActivationReason


class DriftStatus(StrEnum):
    IN_SYNC = "in_sync"
    ROLLBACK = "rollback"  # explained: the user pinned an earlier version on purpose
    DRIFT = "drift"
    NO_VERSION = "no_version"  # nothing trained yet
    UNKNOWN_LATEST = "unknown_latest"  # Replicate reports no version for the destination


@dataclass(frozen=True, slots=True)
class DriftFinding:
    status: DriftStatus
    current_version_id: str | None
    latest_version_id: str | None
    reason: str

    @property
    def is_problem(self) -> bool:
        return self.status in (DriftStatus.DRIFT, DriftStatus.UNKNOWN_LATEST)


def classify_drift(current_version_id: str | None, current_reason: str | None,
                   latest_version_id: str | None) -> DriftFinding:
    if current_version_id is None:
        return DriftFinding(DriftStatus.NO_VERSION, None, latest_version_id, "no version has been activated")
    if latest_version_id is None:
        return DriftFinding(DriftStatus.UNKNOWN_LATEST, current_version_id, None,
                            "Replicate reports no version for the destination")
    if current_version_id == latest_version_id:
        return DriftFinding(DriftStatus.IN_SYNC, current_version_id, latest_version_id, "current is latest")
    if current_reason == ActivationReason.ROLLBACK:
        return DriftFinding(DriftStatus.ROLLBACK, current_version_id, latest_version_id,
                            "an earlier version was pinned by a rollback")
    return DriftFinding(DriftStatus.DRIFT, current_version_id, latest_version_id,
                        "the stored current version is not the destination's latest")
