"""`lorapin` — operator tools for a deployed stack or, with `--local`, the embedded local stack.

    lorapin audit [--user U]            R9: stored current version vs Replicate's latest, ownership, trigger word
    lorapin backfill FILE [--apply]     import the legacy `user_models` table (CSV or JSON lines)
    lorapin show USER                   a user's model, versions, trainings and generations
    lorapin rollback USER VERSION       pin an earlier version (the API's own code path)

Every command prints a readable table, or JSON with `--json`. Against a deployed stack, the command
reads the same environment variables as the functions (docs/CONTRACTS.md) and the Replicate token
from Secrets Manager; `--local` reads them from the state file `python -m infra.local up` writes.
Exit codes: 0 all well, 1 something needs attention or failed, 2 wrong usage.

The decisions live in `infra.ops.audit` and `infra.ops.legacy`; this module only reads, writes and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from infra.ops.audit import ModelAudit, ModelFacts, audit_model
from infra.ops.audit import summarise as summarise_audit
from infra.ops.legacy import (
    BackfillContext,
    DestinationFacts,
    ExistingModel,
    LegacyRow,
    RowOutcome,
    RowPlan,
    TrainedWith,
    index_trainings_by_version,
    plan_backfill,
    read_legacy_rows,
    trained_trigger_word,
    trainer_version_ids,
)
from infra.ops.replicate_listing import list_trainings, version_ids
from lorapin.adapters.replicate_gateway import ReplicateGateway, ReplicateRejected
from lorapin.adapters.repository import Repository
from lorapin.adapters.settings import Settings
from lorapin.adapters.tables import GenerationItem, ModelItem, VersionInfo, VersionItem
from lorapin.domain.clock import now_iso
from lorapin.domain.errors import EventPublishFailed, InvalidVersionRef, LorapinError, UpstreamUnavailable
from lorapin.domain.replicate_objects import ReplicateTraining
from lorapin.domain.statuses import ActivationReason, ModelStatus
from lorapin.domain.versions import ModelName, VersionRef, is_version_id
from lorapin.http.views import generation_view, model_view, training_view
from lorapin.runtime import Runtime

LOCAL_FUNCTION_ID = "TrainingApiFunction"  # whose environment the local commands borrow
SHORT_ID = 12  # characters of a version id shown in tables (the JSON has the full id)


class CommandFailed(Exception):
    """What an operator is told when a command cannot do its job: a code and a sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- connecting --------------------------------------------------------------------------------------
def local_environment(state_file: Path | None) -> dict[str, str]:
    """The functions' environment of a running local stack (as `python -m infra.local invoke` reads it)."""
    from infra.local.state import LocalStackNotRunning, running_state

    try:
        state = running_state(state_file)
    except LocalStackNotRunning as exc:
        raise CommandFailed("LOCAL_STACK_NOT_RUNNING", str(exc)) from exc
    try:
        return dict(state["function_env"][LOCAL_FUNCTION_ID])
    except (KeyError, TypeError) as exc:
        raise CommandFailed("LOCAL_STACK_NOT_RUNNING",
                            f"the local stack's state has no environment for {LOCAL_FUNCTION_ID}") from exc


def connect(args: argparse.Namespace) -> Runtime:
    """Settings, tables, bus and Replicate of the stack the command talks to."""
    environment: dict[str, str] | None = None
    if args.local:
        environment = local_environment(args.state_file)
        os.environ.update(environment)  # boto3 and the secret provider read credentials and endpoint here
    try:
        settings = Settings.from_env(environment)
    except RuntimeError as exc:
        raise CommandFailed("MISCONFIGURED", f"{exc}. Export the functions' environment variables "
                            "(docs/CONTRACTS.md), or use --local for the local stack.") from exc
    return Runtime(settings)


# --- output ------------------------------------------------------------------------------------------
def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; None shows as `-`."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)])


def short(version_id: str | None) -> str | None:
    return version_id[:SHORT_ID] if version_id else None


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


# --- reading Replicate -------------------------------------------------------------------------------
class ReplicateFacts:
    """What the commands ask Replicate, each question asked once per run."""

    def __init__(self, gateway: ReplicateGateway) -> None:
        self._gateway = gateway
        self._destinations: dict[str, DestinationFacts] = {}
        self._trainings: list[ReplicateTraining] | None = None
        self._trained_with: dict[str, TrainedWith] | None = None

    def destination(self, model: ModelName) -> DestinationFacts:
        key = str(model)
        if key not in self._destinations:
            try:
                latest = self._gateway.latest_version_id(model)
            except ReplicateRejected as exc:
                if exc.status != 404:
                    raise
                self._destinations[key] = DestinationFacts(exists=False)
            else:
                self._destinations[key] = DestinationFacts(exists=True, latest_version_id=latest,
                                                           version_ids=tuple(version_ids(self._gateway, model)))
        return self._destinations[key]

    def trainings(self) -> list[ReplicateTraining]:
        """The account's trainings; a succeeded one listed without its input is fetched whole."""
        if self._trainings is None:
            listed = list_trainings(self._gateway)
            self._trainings = [self._gateway.get_training(t.id) if t.input is None and t.output else t
                               for t in listed]
        return self._trainings

    def trained_with(self) -> dict[str, TrainedWith]:
        """The account's successful trainings by the version ref they produced."""
        if self._trained_with is None:
            self._trained_with = index_trainings_by_version(self.trainings())
        return self._trained_with

    def training_input(self, replicate_training_id: str) -> dict[str, Any] | None:
        return self._gateway.get_training(replicate_training_id).input


# --- audit -------------------------------------------------------------------------------------------
def _audit(args: argparse.Namespace, runtime: Runtime) -> int:
    repository = runtime.repository
    if args.user:
        model = repository.get_model(args.user)
        if model is None:
            raise CommandFailed("NO_MODEL", f"lorapin has no model for user {args.user!r}.")
        models = [model]
    else:
        models = sorted(repository.all_models(), key=lambda m: m.user_id)
    replicate = ReplicateFacts(ReplicateGateway(runtime.secrets.api_token, runtime.settings.replicate_base_url))
    audits = [audit_model(_model_facts(model, repository, replicate)) for model in models]
    summary = summarise_audit(audits)
    emit(args, {"models": [a.to_dict() for a in audits], "summary": summary}, _audit_text(audits, summary))
    return 0 if summary["problems"] == 0 else 1


def _model_facts(model: ModelItem, repository: Repository, replicate: ReplicateFacts) -> ModelFacts:
    current = model.current_version
    stored = ModelFacts(user_id=model.user_id, destination=model.destination, model_trigger_word=model.trigger_word,
                        current_version_id=current.id if current else None,
                        current_reason=current.reason if current else None,
                        current_trigger_word=current.trigger_word if current else None)
    try:
        destination = replicate.destination(ModelName.parse(model.destination))
        trained = _trained_trigger_word(current, repository, replicate) if current else None
    except (ReplicateRejected, UpstreamUnavailable, InvalidVersionRef) as exc:
        return replace(stored, check_error=str(exc))
    return replace(stored, destination_exists=destination.exists, latest_version_id=destination.latest_version_id,
                   destination_version_ids=frozenset(destination.version_ids), trained_trigger_word=trained)


def _trained_trigger_word(current: VersionInfo, repository: Repository, replicate: ReplicateFacts) -> str | None:
    """The word the current version was trained with: the input of its Replicate training (found
    through our training record, or for a backfilled version through the account's trainings), or
    what our record says was sent when Replicate no longer shows the input."""
    training = repository.get_training(current.training_id) if current.training_id else None
    if training is not None and training.replicate_training_id:
        word = trained_trigger_word(replicate.training_input(training.replicate_training_id))
        return word or training.trigger_word
    found = replicate.trained_with().get(current.ref)
    if found is not None:
        return found.trigger_word
    return training.trigger_word if training is not None else None


def _audit_text(audits: list[ModelAudit], summary: dict[str, int]) -> str:
    rows = [[a.facts.user_id, a.facts.destination, short(a.facts.current_version_id), short(a.facts.latest_version_id),
             a.drift.status.value, _yes_no(a.version_belongs_to_destination), a.trigger_word.value,
             ", ".join(i.value for i in a.issues) or "ok"] for a in audits]
    table = render_table(["USER", "DESTINATION", "CURRENT", "LATEST", "DRIFT", "OWN VERSION", "TRIGGER WORD",
                          "ISSUES"], rows)
    details = [f"  {a.facts.user_id}: {detail}" for a in audits for detail in a.details]
    counted = ", ".join(f"{key} {value}" for key, value in summary.items() if key not in ("models", "problems"))
    footer = f"{summary['models']} model(s), {summary['problems']} with problems ({counted})"
    return "\n".join([table, *(["", "details:", *details] if details else []), "", footer])


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "NO")


# --- backfill ----------------------------------------------------------------------------------------
PHOTO_SET_UNKNOWN = "photo_set_unknown"
PHOTO_SET_UNKNOWN_NOTE = (
    f"{PHOTO_SET_UNKNOWN}: the legacy app kept no record of the photos this version was trained on, so its "
    "first retrain must choose a mode (422 MODE_REQUIRED until it does): `replace` with every photo to keep, "
    "since `merge` has nothing to merge with")
def _backfill(args: argparse.Namespace, runtime: Runtime) -> int:
    try:
        rows = read_legacy_rows(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandFailed("UNREADABLE_FILE", f"cannot read {args.file}: {exc}") from exc
    settings = runtime.settings
    replicate = ReplicateFacts(ReplicateGateway(runtime.secrets.api_token, runtime.settings.replicate_base_url))
    trainings = replicate.trainings()
    context = BackfillContext(
        owner=settings.replicate_owner, trainer_model=settings.trainer_model,
        trainer_version_ids=trainer_version_ids(trainings, settings.trainer_version),
        destinations=_destinations_of(rows, settings.replicate_owner, replicate),
        trained_with=replicate.trained_with(), existing=_existing_models(rows, runtime.repository),
        trust_stored_trigger_words=args.trust_stored_trigger_words)
    plans = plan_backfill(rows, context)
    results = [(plan, _write(plan, runtime.repository) if args.apply and plan.outcome is RowOutcome.MIGRATE else plan)
               for plan in plans]
    document = [_plan_dict(final, applied=args.apply, planned=plan) for plan, final in results]
    counts = dict(Counter(row["outcome"] for row in document))
    unknown_sets = sum(1 for row in document if row.get("attention"))
    if unknown_sets:
        counts[PHOTO_SET_UNKNOWN] = unknown_sets
    emit(args, {"apply": args.apply, "rows": document, "summary": counts}, _backfill_text(document, counts, args.apply))
    return 1 if counts.get(RowOutcome.NEEDS_ATTENTION.value) else 0


def _destinations_of(rows: list[LegacyRow], owner: str, replicate: ReplicateFacts) -> dict[str, DestinationFacts]:
    """Replicate's facts about every destination the rows name that the account owns."""
    found: dict[str, DestinationFacts] = {}
    for row in rows:
        try:
            model = ModelName.parse(row.replicate_model_id)
        except InvalidVersionRef:
            continue
        if model.owner == owner:
            found[str(model)] = replicate.destination(model)
    return found


def _existing_models(rows: list[LegacyRow], repository: Repository) -> dict[str, ExistingModel]:
    existing: dict[str, ExistingModel] = {}
    for user_id in {row.user_id for row in rows if row.user_id}:
        model = repository.get_model(user_id)
        if model is not None:
            current = model.current_version
            existing[user_id] = ExistingModel(destination=model.destination, trigger_word=model.trigger_word,
                                              current_version_id=current.id if current else None,
                                              current_trigger_word=current.trigger_word if current else None)
    return existing


def _write(plan: RowPlan, repository: Repository) -> RowPlan:
    """Write the model and its version in one transaction that only creates (never overwrites)."""
    assert plan.version is not None and plan.trigger_word is not None and plan.destination is not None
    now = now_iso()
    activated_at = plan.updated_at or now
    current = VersionInfo(id=plan.version.id, ref=plan.version.ref, trigger_word=plan.trigger_word, training_id=None,
                          seq=0, activated_at=activated_at, reason=ActivationReason.TRAINING)
    model = repository.new_model(plan.user_id, destination=plan.destination, trigger_word=plan.trigger_word,
                                 status=ModelStatus.READY, current_version=current, applied_seq=0, last_seq=0,
                                 created_at=plan.created_at or now)
    model.updated_at = now
    version = VersionItem(plan.user_id, plan.version.id, ref=plan.version.ref, destination=plan.destination,
                          trigger_word=plan.trigger_word, training_id=None, seq=0, image_count=0,
                          created_at=activated_at)
    if not repository.create_imported_model(model, version):
        return replace(plan, outcome=RowOutcome.NEEDS_ATTENTION,
                       reasons=("lorapin's tables changed while the plan was made (a model or version for this user "
                                "appeared); nothing written: run the backfill again",))
    return plan


def _plan_dict(final: RowPlan, *, applied: bool, planned: RowPlan) -> dict[str, Any]:
    document = final.to_dict()
    if final.outcome is RowOutcome.MIGRATE:
        document["outcome"] = "migrated" if applied else "would_migrate"
    if final.outcome in (RowOutcome.MIGRATE, RowOutcome.UNCHANGED):
        document["attention"] = [PHOTO_SET_UNKNOWN_NOTE]
    elif planned.outcome is RowOutcome.MIGRATE:
        document["planned"] = "migrate"
    return document


def _backfill_text(document: list[dict[str, Any]], counts: dict[str, int], applied: bool) -> str:
    rows = [[row["line"], row["user_id"] or None, row["outcome"], row["destination"], short(row["version_id"]),
             row["trigger_word"], "; ".join([*row["reasons"], *row.get("attention", [])])] for row in document]
    table = render_table(["LINE", "USER", "OUTCOME", "DESTINATION", "VERSION", "TRIGGER WORD", "REASONS"], rows)
    summary = ", ".join(f"{value} {key}" for key, value in sorted(counts.items()))
    tail = "" if applied else "  (dry run: nothing written; add --apply to write)"
    return f"{table}\n\n{len(document)} row(s): {summary}{tail}"


# --- show and rollback -------------------------------------------------------------------------------
def _show(args: argparse.Namespace, runtime: Runtime) -> int:
    model, versions = runtime.history().model(args.user_id)
    trainings = runtime.repository.trainings_of(args.user_id, limit=args.limit)
    generations = list(GenerationItem.by_user.query(args.user_id, scan_index_forward=False, limit=args.limit))
    bucket = runtime.settings.media_bucket
    document = {"user_id": args.user_id, "model": model_view(model, versions),
                "trainings": [training_view(t) for t in trainings],
                "generations": [generation_view(g, lambda key: f"s3://{bucket}/{key}") for g in generations]}
    emit(args, document, _show_text(document))
    return 0


def _show_text(document: dict[str, Any]) -> str:
    model = document["model"]
    current = model["current_version"]
    head = [f"user {document['user_id']}: destination {model['destination']}, trigger word "
            f"{model['trigger_word']!r}, status {model['status']}",
            f"current version: {current['ref']} ({current['reason']}, seq {current['seq']}, activated "
            f"{current['activated_at']})" if current else "current version: none"]
    versions = render_table(["CURRENT", "SEQ", "VERSION", "TRIGGER WORD", "TRAINING", "ACTIVATED"], [
        ["*" if v["active"] else "", v["seq"], v["id"], v["trigger_word"], v["training_id"], v["activated_at"]]
        for v in model["versions"]])
    trainings = render_table(["SEQ", "TRAINING", "STATUS", "MODE", "IMAGES", "TRIGGER WORD", "VERSION", "CREATED",
                              "ERROR"], [
        [t["seq"], t["id"], t["status"], t["mode"], t["image_count"], t["trigger_word"], short(t["version_id"]),
         t["created_at"], t["error"]] for t in document["trainings"]])
    generations = render_table(["CREATED", "GENERATION", "STATUS", "VERSION USED", "PROMPT"], [
        [g["created_at"], g["id"], g["status"], g["model_version_ref"], g["prompt"][:60]]
        for g in document["generations"]])
    return "\n".join([*head, "", "versions (newest first, * = current):", versions, "", "trainings (newest first):",
                      trainings, "", "generations (newest first):", generations])


def _rollback(args: argparse.Namespace, runtime: Runtime) -> int:
    version_id = _version_id_argument(args.version)
    history = runtime.history()  # the API's own path (POST /model/rollback)
    before = runtime.repository.get_model(args.user_id)
    history.rollback(args.user_id, version_id)
    model, versions = history.model(args.user_id)
    previous = before.current_version.ref if before and before.current_version else "none"
    current = model.current_version
    text = f"user {args.user_id}: current version is now {current.ref if current else '-'} (rollback; was {previous})"
    emit(args, {"model": model_view(model, versions)}, text)
    return 0


def _version_id_argument(value: str) -> str:
    """A version given as its 64-hex id or as `owner/name:id`."""
    candidate = value.strip()
    if ":" in candidate:
        try:
            return VersionRef.parse(candidate).id
        except InvalidVersionRef as exc:
            raise CommandFailed("INVALID_VERSION", str(exc)) from exc
    if not is_version_id(candidate):
        raise CommandFailed("INVALID_VERSION", f"{value!r} is not a 64-character version id (nor owner/name:id)")
    return candidate


# --- entry point -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common.add_argument("--local", action="store_true", help="talk to the local stack (python -m infra.local up)")
    common.add_argument("--state-file", type=Path, default=None,
                        help="the local stack's state file (default: $LORAPIN_LOCAL_STATE, or .lorapin-local.json "
                             "here or in a parent folder)")
    parser = argparse.ArgumentParser(prog="lorapin", description=__doc__.split("\n\nThe decisions")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    audit = commands.add_parser("audit", parents=[common], help="compare stored versions with Replicate (R9)")
    audit.add_argument("--user", help="audit only this user's model")
    audit.set_defaults(run=_audit)

    backfill = commands.add_parser("backfill", parents=[common], help="import the legacy user_models table")
    backfill.add_argument("file", help="the legacy rows, CSV with a header or JSON lines")
    backfill.add_argument("--apply", action="store_true", help="write the plan (without it: a dry run)")
    backfill.add_argument("--trust-stored-trigger-words", action="store_true",
                          help="migrate with the stored trigger word when no Replicate training can verify it")
    backfill.set_defaults(run=_backfill)

    show = commands.add_parser("show", parents=[common], help="a user's model, versions, trainings, generations")
    show.add_argument("user_id")
    show.add_argument("--limit", type=int, default=10, help="trainings and generations to list (default 10)")
    show.set_defaults(run=_show)

    rollback = commands.add_parser("rollback", parents=[common], help="pin an earlier version of a user's model")
    rollback.add_argument("user_id")
    rollback.add_argument("version", help="the version id (64 hex) or owner/name:id")
    rollback.set_defaults(run=_rollback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runtime = connect(args)
        status: int = args.run(args, runtime)
    except EventPublishFailed as exc:  # the write committed; only the notification is missing
        _report_error(args, "EVENT_NOT_PUBLISHED", f"written, but the event was not published: {exc}")
        return 1
    except (LorapinError, CommandFailed) as exc:
        _report_error(args, exc.code, exc.message)
        return 1
    except ReplicateRejected as exc:
        _report_error(args, "REPLICATE_REJECTED", str(exc))
        return 1
    except (BotoCoreError, ClientError, PynamoDBException, GetParameterError) as exc:
        _report_error(args, "AWS_ERROR", str(exc))
        return 1
    return status


def _report_error(args: argparse.Namespace, code: str, message: str) -> None:
    if args.json:
        print(json.dumps({"error": {"code": code, "message": message}}, indent=2))
    else:
        print(f"error {code}: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
