"""PynamoDB models of lorapin's tables (keys and indexes as in docs/CONTRACTS.md and template.yaml).

Table names and the endpoint come from `Settings` through `bind_tables`, called once at cold start.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from lorapin.adapters.settings import Settings

# Sparse indexes of things in flight use one fixed partition: a few hundred live items at most,
# read by the reconciler only.
ACTIVE_SHARD = "active"
# Every model sits in one partition of the `recent` index, ordered by `updated_at`, so the drift
# check reads the recently touched ones without a scan. Models change on trainings and rollbacks only.
DRIFT_SHARD = "models"


class VersionInfo(MapAttribute[str, Any]):
    """A version as the model knows it (REQUIREMENTS §4 `current_version`)."""

    id = UnicodeAttribute()
    ref = UnicodeAttribute()
    trigger_word = UnicodeAttribute()
    training_id = UnicodeAttribute(null=True)
    seq = NumberAttribute()
    activated_at = UnicodeAttribute()
    reason = UnicodeAttribute()  # ActivationReason


class RecentModels(GlobalSecondaryIndex["ModelItem"]):
    class Meta:
        index_name = "recent"
        projection = AllProjection()

    drift_shard = UnicodeAttribute(hash_key=True)
    updated_at = UnicodeAttribute(range_key=True)


class ModelItem(Model):
    """One per user: the destination model, its trigger word and the current version."""

    class Meta:
        table_name = "Models"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    destination = UnicodeAttribute()
    trigger_word = UnicodeAttribute()
    status = UnicodeAttribute()  # ModelStatus
    current_version = VersionInfo(null=True)
    applied_seq = NumberAttribute(default=0)  # high-water mark of applied trainings (I1)
    last_seq = NumberAttribute(default=0)  # last sequence number handed to a training
    in_flight_training_id = UnicodeAttribute(null=True)  # I2: at most one
    last_photo_manifest = JSONAttribute(null=True)  # photo set of the newest started training
    pending_event = JSONAttribute(null=True)  # outbox of a rollback's event until published (I5)
    publish_lease_until = UnicodeAttribute(null=True)  # lorapin.adapters.outbox: who publishes it, alone
    drift_shard = UnicodeAttribute(default=DRIFT_SHARD)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()

    recent = RecentModels()


class TrainingsByUser(GlobalSecondaryIndex["TrainingItem"]):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)


class TrainingsByReplicateId(GlobalSecondaryIndex["TrainingItem"]):
    class Meta:
        index_name = "by_replicate_id"
        projection = AllProjection()

    replicate_training_id = UnicodeAttribute(hash_key=True)


class ActiveTrainings(GlobalSecondaryIndex["TrainingItem"]):
    class Meta:
        index_name = "active"
        projection = AllProjection()

    active_shard = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class TrainingItem(Model):
    class Meta:
        table_name = "Trainings"
        region = "us-east-1"

    training_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    seq = NumberAttribute()
    replicate_training_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()  # TrainingStatus
    mode = UnicodeAttribute(default="replace")
    image_count = NumberAttribute(default=0)
    photo_manifest = JSONAttribute(null=True)
    params = JSONAttribute(null=True)
    trigger_word = UnicodeAttribute()
    destination = UnicodeAttribute()
    trainer_model = UnicodeAttribute()
    trainer_version = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    pending_event = JSONAttribute(null=True)  # outbox: {"detail_type", "detail"} not yet published (I5)
    publish_lease_until = UnicodeAttribute(null=True)  # lorapin.adapters.outbox: who publishes it, alone
    active_shard = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)

    by_user = TrainingsByUser()
    by_replicate_id = TrainingsByReplicateId()
    active = ActiveTrainings()


class VersionItem(Model):
    """Every version ever produced for a user's destination (R10)."""

    class Meta:
        table_name = "Versions"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    version_id = UnicodeAttribute(range_key=True)
    ref = UnicodeAttribute()
    destination = UnicodeAttribute()
    trigger_word = UnicodeAttribute()
    training_id = UnicodeAttribute(null=True)
    seq = NumberAttribute()
    image_count = NumberAttribute(default=0)
    created_at = UnicodeAttribute()


class GenerationsByUser(GlobalSecondaryIndex["GenerationItem"]):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class WaitingGenerations(GlobalSecondaryIndex["GenerationItem"]):
    class Meta:
        index_name = "waiting"
        projection = AllProjection()

    waiting_user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ActiveGenerations(GlobalSecondaryIndex["GenerationItem"]):
    class Meta:
        index_name = "active"
        projection = AllProjection()

    active_shard = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class GenerationItem(Model):
    class Meta:
        table_name = "Generations"
        region = "us-east-1"

    generation_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    status = UnicodeAttribute()  # GenerationStatus
    prompt = UnicodeAttribute()  # as sent to Replicate, trigger word included (or the raw prompt while waiting)
    request = JSONAttribute()  # the caller's prompt, num_outputs, aspect_ratio, seed
    seed = NumberAttribute(null=True)  # the seed sent to Replicate (the caller's or a random one)
    model_version_ref = UnicodeAttribute(null=True)
    replicate_prediction_id = UnicodeAttribute(null=True)
    output_keys = ListAttribute(of=UnicodeAttribute, null=True)
    error = UnicodeAttribute(null=True)
    waiting_user_id = UnicodeAttribute(null=True)
    active_shard = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)

    by_user = GenerationsByUser()
    waiting = WaitingGenerations()
    active = ActiveGenerations()


ALL_TABLES: tuple[type[Model], ...] = (ModelItem, TrainingItem, VersionItem, GenerationItem)


def bind_tables(settings: Settings) -> None:
    """Point every model at its configured table, region and (locally) endpoint."""
    names = {
        ModelItem: settings.models_table,
        TrainingItem: settings.trainings_table,
        VersionItem: settings.versions_table,
        GenerationItem: settings.generations_table,
    }
    for model, name in names.items():
        binding = (name, settings.aws_region, settings.aws_endpoint_url)
        if (model.Meta.table_name, model.Meta.region, getattr(model.Meta, "host", None)) == binding:
            continue  # already bound: keep the connection
        model.Meta.table_name, model.Meta.region, model.Meta.host = binding
        model._connection = None  # drop a connection made for other settings
