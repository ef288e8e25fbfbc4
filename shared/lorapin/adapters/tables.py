"""PynamoDB models of lorapin's tables (keys and indexes as in docs/CONTRACTS.md and template.yaml).

Table names and the endpoint come from `Settings` through `bind_tables`, called once at cold start.
Every table talks through one PynamoDB connection (`connection()`), whose DynamoDB client comes
from the process's one botocore session (`lorapin.adapters.aws`): PynamoDB's default is a
connection, a session and a client per table, ~35 ms each the first time a table is used.
"""

from __future__ import annotations

import threading
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection.table import TableConnection
from pynamodb.exceptions import TableError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from lorapin.adapters.aws import SharedSessionConnection
from lorapin.adapters.settings import Settings

_adding = threading.Lock()
MAX_POOL_CONNECTIONS = 32
"""Every table shares one client, so one HTTP pool: the reconciler reads with up to 8 threads while
8 more work on items (PynamoDB's default pool holds 10). Per-table `Meta` options of PynamoDB
(timeouts, retries, pool size) are not read: every lorapin table uses the defaults."""
_shared: dict[tuple[str | None, str | None], SharedSessionConnection] = {}  # (region, endpoint) → its connection


def connection(region: str | None, host: str | None) -> SharedSessionConnection:
    """The one connection of every table (and of the repository's transactions) in `region`."""
    with _adding:
        if (region, host) not in _shared:
            _shared[region, host] = SharedSessionConnection(region=region, host=host,
                                                            max_pool_connections=MAX_POOL_CONNECTIONS)
        return _shared[region, host]


def forget_connections() -> None:
    """Drop every connection (a SnapStart restore): the next request opens a new one."""
    with _adding:
        _shared.clear()
        for table in ALL_TABLES:
            table._connection = None


class Table(Model):
    """A lorapin table: PynamoDB's model, on the shared connection."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()  # PynamoDB's own, with this table's schema
        if isinstance(table.connection, SharedSessionConnection):
            return table  # every call after the first (each request's): no lock, no lookup
        shared = connection(cls.Meta.region, getattr(cls.Meta, "host", None))
        if table.connection is not shared:
            with _adding:  # two threads may reach a table's first use together
                try:
                    shared.get_meta_table(cls.Meta.table_name)  # known already: the table was bound again
                except TableError:
                    shared.add_meta_table(table.connection.get_meta_table(cls.Meta.table_name))
            table.connection = shared
        return table


# What the reconciler must look at sits in a sparse `due` index, spread over N partition keys
# (`due_shard`, e.g. "t7") and ordered by when it is due (`due_at`): no key value takes every
# in-flight item's writes (docs/CAPACITY.md), and a run reads only what is due, most overdue first.
# Every model sits in the `drift` index under one of N keys ("d3"), ordered by when its drift was
# last checked, so the drift check reaches every model, least recently checked first.
TRAINING_SHARD, GENERATION_SHARD, MODEL_SHARD, DRIFT_SHARD = "t", "g", "m", "d"
NEVER_CHECKED = "0000"  # sorts before every ISO time: a new model is checked first


class VersionInfo(MapAttribute[str, Any]):
    """A version as the model knows it (REQUIREMENTS §4 `current_version`)."""

    id = UnicodeAttribute()
    ref = UnicodeAttribute()
    trigger_word = UnicodeAttribute()
    training_id = UnicodeAttribute(null=True)
    seq = NumberAttribute()
    activated_at = UnicodeAttribute()
    reason = UnicodeAttribute()  # ActivationReason


class ModelsByDriftCheck(GlobalSecondaryIndex["ModelItem"]):
    class Meta:
        index_name = "drift"
        projection = AllProjection()

    drift_shard = UnicodeAttribute(hash_key=True)
    drift_checked_at = UnicodeAttribute(range_key=True)


class DueModels(GlobalSecondaryIndex["ModelItem"]):
    """Sparse: models whose outbox holds a rollback's event not yet published."""

    class Meta:
        index_name = "due"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class ModelItem(Table):
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
    # per-user generation limits (lorapin.domain.limits): this minute's requests, and how many run
    generation_window = UnicodeAttribute(null=True)
    generation_window_count = NumberAttribute(null=True)
    generations_in_flight = NumberAttribute(null=True)
    pending_event = JSONAttribute(null=True)  # outbox of a rollback's event until published (I5)
    publish_lease_until = UnicodeAttribute(null=True)  # lorapin.adapters.outbox: who publishes it, alone
    drift_shard = UnicodeAttribute()
    drift_checked_at = UnicodeAttribute(default=NEVER_CHECKED)
    due_shard = UnicodeAttribute(null=True)  # set while the outbox holds an event
    due_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()

    drift = ModelsByDriftCheck()
    due = DueModels()


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


class DueTrainings(GlobalSecondaryIndex["TrainingItem"]):
    """Sparse: trainings in flight, or finished with an event still to publish."""

    class Meta:
        index_name = "due"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class TrainingItem(Table):
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
    params = JSONAttribute(null=True)
    trigger_word = UnicodeAttribute()
    destination = UnicodeAttribute()
    trainer_model = UnicodeAttribute()
    trainer_version = UnicodeAttribute()
    version_id = UnicodeAttribute(null=True)
    previous_version_id = UnicodeAttribute(null=True)  # the model's current version when it began
    error = UnicodeAttribute(null=True)
    error_code = UnicodeAttribute(null=True)  # e.g. INVALID_OUTPUT_VERSION
    pending_event = JSONAttribute(null=True)  # outbox: {"detail_type", "detail"} not yet published (I5)
    publish_lease_until = UnicodeAttribute(null=True)  # lorapin.adapters.outbox: who publishes it, alone
    due_shard = UnicodeAttribute(null=True)  # lorapin.domain.schedule: set while the reconciler has work here
    due_at = UnicodeAttribute(null=True)
    check_interval = NumberAttribute(null=True)  # seconds between looks, once the training is late
    submit_lease_until = UnicodeAttribute(null=True)  # a submission (zip + create) holds the training
    submit_attempts = NumberAttribute(null=True)
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)

    by_user = TrainingsByUser()
    by_replicate_id = TrainingsByReplicateId()
    due = DueTrainings()


class VersionsBySeq(GlobalSecondaryIndex["VersionItem"]):
    class Meta:
        index_name = "by_seq"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)


class VersionItem(Table):
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

    by_seq = VersionsBySeq()


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


class DueGenerations(GlobalSecondaryIndex["GenerationItem"]):
    """Sparse: generations whose prediction runs (not those waiting for a model: an event releases them)."""

    class Meta:
        index_name = "due"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class GenerationItem(Table):
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
    error_code = UnicodeAttribute(null=True)  # e.g. OUTPUTS_EXPIRED, NO_OUTPUT
    waiting_user_id = UnicodeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_at = UnicodeAttribute(null=True)
    check_interval = NumberAttribute(null=True)
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)

    by_user = GenerationsByUser()
    waiting = WaitingGenerations()
    due = DueGenerations()


class StateItem(Table):
    """What the reconciler keeps between runs: where it stopped, and recent training durations."""

    class Meta:
        table_name = "State"
        region = "us-east-1"

    key = UnicodeAttribute(hash_key=True)
    next_shard = NumberAttribute(default=0)  # the shard the next run starts with (round robin)
    durations = JSONAttribute(null=True)  # {"steps=1000": [seconds, ...]}, most recent last
    durations_watermark = UnicodeAttribute(null=True)  # completed_at of the newest duration recorded
    updated_at = UnicodeAttribute(null=True)


class PhotoItem(Table):
    """One uploaded photo as the inspector found it (REQUIREMENTS §6), written on its arrival.

    `etag` is the S3 object's at inspection: the training zip is built from exactly those bytes.
    """

    class Meta:
        table_name = "Photos"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    photo_key = UnicodeAttribute(range_key=True)  # the S3 key POST /uploads handed out
    etag = UnicodeAttribute()
    byte_size = NumberAttribute()
    usable = BooleanAttribute()  # False: an error finding keeps it out of every set
    sha256 = UnicodeAttribute(null=True)
    dhash = UnicodeAttribute(null=True)
    width = NumberAttribute(null=True)  # as seen, EXIF orientation applied
    height = NumberAttribute(null=True)
    format = UnicodeAttribute(null=True)
    blur = NumberAttribute(null=True)
    findings = JSONAttribute(default=list)
    train_key = UnicodeAttribute(null=True)  # the JPEG copy the trainer gets (HEIC uploads)
    thumbnail_key = UnicodeAttribute(null=True)
    excluded_from = UnicodeAttribute(null=True)  # DELETE /photos: left out of merges from this training's set
    inspected_at = UnicodeAttribute()


class PhotoSetItem(Table):
    """The photo set a training used (its manifest): the next merge starts from the set of the
    training that made the current version. Written with the training, never changed."""

    class Meta:
        table_name = "PhotoSets"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    training_id = UnicodeAttribute(range_key=True)
    entries = JSONAttribute()  # [PhotoEntry.to_dict()]
    created_at = UnicodeAttribute()


ALL_TABLES: tuple[type[Table], ...] = (ModelItem, TrainingItem, VersionItem, GenerationItem, StateItem, PhotoItem,
                                       PhotoSetItem)


def bind_tables(settings: Settings) -> None:
    """Point every model at its configured table, region and (locally) endpoint."""
    names = {
        ModelItem: settings.models_table,
        TrainingItem: settings.trainings_table,
        VersionItem: settings.versions_table,
        GenerationItem: settings.generations_table,
        StateItem: settings.state_table,
        PhotoItem: settings.photos_table,
        PhotoSetItem: settings.photo_sets_table,
    }
    for model, name in names.items():
        binding = (name, settings.aws_region, settings.aws_endpoint_url)
        if (model.Meta.table_name, model.Meta.region, getattr(model.Meta, "host", None)) == binding:
            continue  # already bound: keep the connection
        model.Meta.table_name, model.Meta.region, model.Meta.host = binding
        model._connection = None  # drop a connection made for other settings
