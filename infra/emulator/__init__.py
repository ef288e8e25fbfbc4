"""A local emulator of the part of Replicate's HTTP API that lorapin uses (`python -m infra.emulator`)."""

from infra.emulator.replicate import TRAINER_MODEL, TRAINER_VERSION_ID, ReplicateEmulator

__all__ = ["TRAINER_MODEL", "TRAINER_VERSION_ID", "ReplicateEmulator"]
