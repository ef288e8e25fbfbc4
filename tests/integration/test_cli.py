"""The `lorapin` operator command against moto's server and the Replicate emulator over HTTP:
backfill of the legacy `user_models` table, the R9 audit, `show` and `rollback`.

`main(argv)` runs in-process; the stack is found through the functions' environment (as on a deployed
stack) or through the local stack's state file (`--local`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any

import pytest
import requests

from infra.emulator import TRAINER_MODEL, TRAINER_VERSION_ID
from infra.local.stack import LOCAL_OWNER
from infra.local.state import write_state
from infra.ops.cli import main
from lorapin.adapters.replicate_gateway import ReplicateGateway
from lorapin.domain.versions import ModelName
from lorapin.services.training_start import destination_name
from tests.harness import Harness, seed_training, wait_for

LEGACY_FIXTURE = Path(__file__).parent.parent / "data" / "legacy_user_models.csv"
REPLICATE_AUTH = {"authorization": "Bearer r8_local"}


# --- helpers -----------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def quiet_functions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The functions run in this process and log to the same stdout the command prints to."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    function_logger = logging.getLogger("lorapin")
    level = function_logger.level
    function_logger.setLevel(logging.WARNING)
    yield
    function_logger.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run the command with `--json`; its exit code and the JSON document it printed (the last one
    that starts a line: a function's log line would be a single line)."""
    code = main([*argv, "--json"])
    lines = capsys.readouterr().out.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return code, json.loads("\n".join(lines[start:]))


def replicate_get(world: Harness, path: str) -> dict[str, Any]:
    response = requests.get(f"{world.emulator.url}{path}", headers=REPLICATE_AUTH, timeout=5)
    response.raise_for_status()
    return dict(response.json())


def managed_destination(user_id: str) -> str:
    """The destination lorapin derives for a user it manages."""
    return str(destination_name(LOCAL_OWNER, user_id))


def latest_on_replicate(world: Harness, destination: str) -> str:
    return str(replicate_get(world, f"/v1/models/{destination}")["latest_version"]["id"])


def legacy_destination(world: Harness, name: str) -> str:
    """A destination the legacy app created on the account lorapin now uses."""
    ReplicateGateway("r8_local", world.emulator.url).create_model(ModelName(LOCAL_OWNER, name))
    return f"{LOCAL_OWNER}/{name}"


def legacy_training(world: Harness, destination: str, trigger_word: str) -> str:
    """Train the way the legacy app did (no webhook), wait for it, and return the new version id."""
    response = requests.post(
        f"{world.emulator.url}/v1/models/{TRAINER_MODEL}/versions/{TRAINER_VERSION_ID}/trainings",
        json={"destination": destination, "input": {"input_images": "https://legacy.example/photos.zip",
                                                    "trigger_word": trigger_word}},
        headers=REPLICATE_AUTH, timeout=5)
    assert response.status_code == 201, response.text
    training_id = response.json()["id"]

    def succeeded() -> dict[str, Any] | None:
        training = replicate_get(world, f"/v1/trainings/{training_id}")
        return training if training["status"] == "succeeded" else None

    version_ref: str = wait_for(succeeded, message=f"legacy training into {destination}")["output"]["version"]
    return version_ref.split(":")[1]


def train_to_completion(world: Harness, user_id: str) -> str:
    """A training through lorapin's own path, delivered by webhook; the version it activated."""
    training_id = seed_training(world, user_id)

    def activated() -> str | None:
        training = world.repository().get_training(training_id)
        return training.version_id if training and training.status == "succeeded" else None

    version_id: str = wait_for(activated, message=f"{user_id}'s training")
    wait_for(lambda: (m := world.repository().get_model(user_id)) is not None and m.in_flight_training_id is None,
             message=f"{user_id}'s training slot freed")
    return version_id


def table_items(world: Harness, logical_id: str) -> list[dict[str, Any]]:
    items = world.stack.client("dynamodb").scan(TableName=world.name(logical_id))["Items"]
    return sorted(items, key=json.dumps)


# --- backfill ----------------------------------------------------------------------------------------
def test_backfill_plans_applies_once_and_a_second_run_changes_nothing(
        harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the legacy app's destinations and trainings on the account lorapin uses ...
    alice = legacy_destination(harness, "legacy-alice")
    alice_older = legacy_training(harness, alice, "ALICEX")
    alice_latest = legacy_training(harness, alice, "ALICEX")
    latest = {user: legacy_training(harness, legacy_destination(harness, f"legacy-{user}"), word)
              for user, word in (("bob", "BOBZ"), ("carol", "CAROLW"), ("dave", "DAVEK"), ("erin", "ERINQ"))}
    latest["alice"] = alice_latest
    for user in ("gina", "ivy"):  # destinations created, never trained successfully
        legacy_destination(harness, f"legacy-{user}")
    # ... hank, whom lorapin already manages (two trainings, then a rollback to the first) ...
    hank_first = train_to_completion(harness, "hank")
    hank_latest = train_to_completion(harness, "hank")
    assert main(["rollback", "hank", hank_first]) == 0
    # ... and the legacy table's messy rows
    legacy_csv = tmp_path / "user_models.csv"
    legacy_csv.write_text(Template(LEGACY_FIXTURE.read_text(encoding="utf-8")).substitute(
        alice_latest=alice_latest, bob_latest=latest["bob"], trainer_version=TRAINER_VERSION_ID,
        hank_latest=hank_latest, hank_destination=managed_destination("hank")), encoding="utf-8")
    capsys.readouterr()

    # When the operator looks at the plan (a dry run, as a table)
    assert main(["backfill", str(legacy_csv)]) == 1  # rows need attention
    table = capsys.readouterr().out
    assert "would_migrate" in table
    assert "dry run: nothing written" in table
    # Then every row has its outcome and reason, and nothing is written
    code, plan = run(capsys, "backfill", str(legacy_csv))
    assert code == 1
    by_user = {row["user_id"] or f"line {row['line']}": row for row in plan["rows"]}
    assert {user: row["outcome"] for user, row in by_user.items()} == {
        "alice": "would_migrate", "bob": "would_migrate", "carol": "would_migrate", "dave": "would_migrate",
        "erin": "would_migrate", "frank": "needs_attention", "line 8": "needs_attention", "gina": "skipped",
        "hank": "skipped", "ivy": "needs_attention", "jack": "skipped"}
    assert plan["summary"] == {"would_migrate": 5, "needs_attention": 3, "skipped": 3,
                               "photo_set_unknown": 5}
    for user in ("alice", "bob", "carol", "dave", "erin"):  # the destination's latest on Replicate, never the trainer's
        assert by_user[user]["version_ref"] == f"{LOCAL_OWNER}/legacy-{user}:{latest[user]}"
        assert by_user[user]["version_id"] == latest_on_replicate(harness, f"{LOCAL_OWNER}/legacy-{user}")
    assert alice_older != alice_latest
    assert by_user["alice"]["reasons"] == []
    # no photo set is known for an imported model: its first retrain must choose a mode, and the plan says so
    assert all("MODE_REQUIRED" in by_user[user]["attention"][0] for user in ("alice", "bob", "carol", "dave", "erin"))
    assert "attention" not in by_user["frank"]
    assert by_user["bob"]["trigger_word"] == "BOBZ"  # the word the version was trained with, not the stored 'bob'
    assert any("'bob' replaced by 'BOBZ'" in reason for reason in by_user["bob"]["reasons"])
    assert by_user["carol"]["stored_version"] == by_user["dave"]["stored_version"] == "trainer"
    assert by_user["erin"]["stored_version"] == "missing"
    assert "does not exist on Replicate" in by_user["frank"]["reasons"][0]
    assert "no user_id" in by_user["line 8"]["reasons"][0]
    assert "belongs to lorapin-local/legacy-alice" in by_user["ivy"]["reasons"][0]
    assert "not overwritten" in by_user["hank"]["reasons"][0]
    assert "still running" in by_user["jack"]["reasons"][0]
    assert "no successful training" in by_user["gina"]["reasons"][0]
    store = harness.repository()
    assert all(store.get_model(user) is None for user in ("alice", "bob", "carol", "dave", "erin"))

    # When it is applied
    code, applied = run(capsys, "backfill", str(legacy_csv), "--apply")
    # Then each planned row is migrated: the model and its version, with the trained trigger word
    assert code == 1
    assert applied["summary"] == {"migrated": 5, "needs_attention": 3, "skipped": 3,
                                  "photo_set_unknown": 5}
    for user in ("alice", "bob", "carol", "dave", "erin"):
        model = store.get_model(user)
        assert model is not None and model.current_version is not None
        assert model.destination == f"{LOCAL_OWNER}/legacy-{user}"
        assert model.current_version.id == latest[user]
        assert model.status == "ready"
        assert model.in_flight_training_id is None
        version = store.get_version(user, latest[user])
        assert version is not None
        assert version.trigger_word == model.trigger_word == model.current_version.trigger_word
    assert [store.get_model(u).trigger_word for u in ("bob", "carol")] == ["BOBZ", "CAROLW"]  # type: ignore[union-attr]
    dave = store.get_model("dave")
    assert dave is not None and dave.created_at == "2024-04-01T09:00:00.000Z"
    hank = store.get_model("hank")  # lorapin's own model is left exactly as it was
    assert hank is not None and hank.current_version is not None
    assert (hank.current_version.id, hank.current_version.reason) == (hank_first, "rollback")
    assert all(store.get_model(user) is None for user in ("frank", "gina", "ivy", "jack"))

    # When it runs again
    before = (table_items(harness, "ModelsTable"), table_items(harness, "VersionsTable"))
    code, again = run(capsys, "backfill", str(legacy_csv), "--apply")
    # Then nothing changes: the migrated rows report "unchanged"
    assert code == 1
    assert again["summary"] == {"unchanged": 5, "needs_attention": 3, "skipped": 3,
                                "photo_set_unknown": 5}
    assert {row["user_id"] for row in again["rows"] if row["outcome"] == "unchanged"} == {
        "alice", "bob", "carol", "dave", "erin"}
    assert (table_items(harness, "ModelsTable"), table_items(harness, "VersionsTable")) == before

    # And the audit finds the migrated models in sync, with their trained trigger words
    code, audit = run(capsys, "audit")
    assert code == 0, audit
    audited = {m["user_id"]: m for m in audit["models"]}
    assert set(audited) >= {"alice", "bob", "carol", "dave", "erin", "hank"}
    assert audited["bob"]["trigger_word"] == "match"
    assert audited["hank"]["drift"] == "rollback"


def test_backfill_reads_json_lines_too(harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    destination = legacy_destination(harness, "legacy-kim")
    version = legacy_training(harness, destination, "KIMV")
    rows = tmp_path / "user_models.jsonl"
    rows.write_text(json.dumps({"user_id": "kim", "replicate_model_id": destination,
                                "replicate_version_id": version[:8], "trigger_word": None,
                                "training_status": "succeeded"}) + "\n", encoding="utf-8")
    code, result = run(capsys, "backfill", str(rows), "--apply")
    assert code == 0
    assert result["rows"][0]["outcome"] == "migrated"
    assert result["rows"][0]["version_id"] == version
    model = harness.repository().get_model("kim")
    assert model is not None and model.trigger_word == "KIMV"


# --- audit, rollback, show ---------------------------------------------------------------------------
def test_audit_finds_drift_a_wrong_trigger_word_and_a_foreign_version_and_accepts_a_rollback(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a model in sync ...
    ann_version = train_to_completion(harness, "ann")
    # ... one whose newest training succeeded on Replicate but whose webhook was lost (drift)
    train_to_completion(harness, "ben")
    harness.emulator.suppress_webhooks(1)
    lost = seed_training(harness, "ben")
    lost_replicate_id = harness.repository().get_training(lost).replicate_training_id  # type: ignore[union-attr]
    wait_for(lambda: replicate_get(harness, f"/v1/trainings/{lost_replicate_id}")["status"] == "succeeded",
             message="the unannounced training")
    # ... one whose stored trigger word is not the one its version was trained with
    train_to_completion(harness, "cat")
    cat = harness.repository().get_model("cat")
    assert cat is not None and cat.current_version is not None
    cat.current_version.trigger_word = "CATX"
    cat.save()
    # ... one pinned to a version of another user's destination
    train_to_completion(harness, "dan")
    dan = harness.repository().get_model("dan")
    assert dan is not None and dan.current_version is not None
    dan.current_version.id = ann_version
    dan.current_version.ref = f"{managed_destination('ann')}:{ann_version}"
    dan.save()
    # ... and one rolled back by the operator, through the API's own code path
    eve_first = train_to_completion(harness, "eve")
    eve_latest = train_to_completion(harness, "eve")
    code, rolled = run(capsys, "rollback", "eve", f"{managed_destination('eve')}:{eve_first}")
    assert code == 0
    assert rolled["model"]["current_version"]["id"] == eve_first
    assert rolled["model"]["current_version"]["reason"] == "rollback"
    event = wait_for(lambda: [e for e in harness.events("ModelVersionActivated")
                              if e["detail"]["reason"] == "rollback"],
                     message="the rollback's ModelVersionActivated event")[0]["detail"]
    assert (event["user_id"], event["version_id"], event["previous_version_id"]) == ("eve", eve_first, eve_latest)

    # When the operator audits every model
    code, audit = run(capsys, "audit")
    # Then the drift, the wrong trigger word and the foreign version are found, and the rollback is fine
    assert code == 1
    by_user = {m["user_id"]: m for m in audit["models"]}
    assert by_user["ann"]["ok"] is True
    assert by_user["ann"]["drift"] == "in_sync"
    assert by_user["ben"]["issues"] == ["drift"]
    assert by_user["ben"]["latest_version_id"] == latest_on_replicate(harness, f"{managed_destination('ben')}")
    assert by_user["cat"]["issues"] == ["trigger_word_mismatch"]
    assert (by_user["cat"]["stored_trigger_word"], by_user["cat"]["trained_trigger_word"]) == ("CATX", "TOK")
    assert "foreign_version" in by_user["dan"]["issues"]
    assert by_user["dan"]["version_belongs_to_destination"] is False
    assert by_user["eve"]["ok"] is True
    assert by_user["eve"]["drift"] == "rollback"
    others = [m for user, m in by_user.items() if user not in ("ann", "ben", "cat", "dan", "eve")]
    assert all(m["ok"] for m in others)  # models other tests left in this world are in order
    assert audit["summary"]["problems"] == 3
    assert audit["summary"]["drift"] == 2  # ben, and dan (pinned to a version that is not its latest)

    # And one user's audit, as a table, exits 0 for the rolled-back model
    assert main(["audit", "--user", "eve"]) == 0
    text = capsys.readouterr().out
    assert "rollback" in text
    assert "0 with problems" in text
    assert main(["audit", "--user", "nobody"]) == 1
    assert "NO_MODEL" in capsys.readouterr().err


def test_rollback_refuses_a_version_that_is_not_the_users(harness: Harness,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    other = train_to_completion(harness, "flo")
    mine = train_to_completion(harness, "gus")
    code, error = run(capsys, "rollback", "gus", other)
    assert code == 1
    assert error["error"]["code"] == "UNKNOWN_VERSION"
    assert main(["rollback", "gus", "4e0de78d"]) == 1
    assert "INVALID_VERSION" in capsys.readouterr().err
    gus = harness.repository().get_model("gus")
    assert gus is not None and gus.current_version is not None
    assert (gus.current_version.id, gus.current_version.reason) == (mine, "training")


def test_show_lists_versions_trainings_and_the_version_each_generation_used(
        harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = train_to_completion(harness, "sue")
    created = harness.call("POST", "/generations", user="sue", body={"prompt": "on a boat"})
    assert created.status_code == 202, created.text
    generation_id = created.json()["generation"]["id"]
    wait_for(lambda: harness.call("GET", f"/generations/{generation_id}", user="sue")
             .json()["generation"]["status"] == "succeeded", message="the generation")
    second = train_to_completion(harness, "sue")

    # Through the functions' environment, as against a deployed stack
    code, shown = run(capsys, "show", "sue")
    assert code == 0
    assert [v["id"] for v in shown["model"]["versions"]] == [second, first]
    assert [v["active"] for v in shown["model"]["versions"]] == [True, False]
    assert [t["version_id"] for t in shown["trainings"]] == [second, first]
    assert [g["model_version_ref"] for g in shown["generations"]] == [f"{managed_destination('sue')}:{first}"]
    assert shown["generations"][0]["outputs"][0].startswith("s3://")

    # Through the local stack's state file (`--local`), as a table
    state_file = tmp_path / ".lorapin-local.json"
    write_state(harness.local, state_file)
    assert main(["show", "sue", "--local", "--state-file", str(state_file)]) == 0
    text = capsys.readouterr().out
    assert f"current version: {managed_destination('sue')}:{second} (training, seq 2" in text
    assert f"{managed_destination('sue')}:{first}" in text  # the version the generation used
    assert "on a boat" in text
    assert main(["show", "nobody", "--local", "--state-file", str(state_file)]) == 1
    assert "NO_MODEL" in capsys.readouterr().err


def test_local_mode_says_when_no_local_stack_is_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.json"
    assert main(["audit", "--local", "--state-file", str(missing)]) == 1
    assert "LOCAL_STACK_NOT_RUNNING" in capsys.readouterr().err
    stopped = tmp_path / ".lorapin-local.json"
    stopped.write_text(json.dumps({"replicate_url": "http://127.0.0.1:9", "function_env": {}}), encoding="utf-8")
    code, error = run(capsys, "audit", "--local", "--state-file", str(stopped))
    assert code == 1
    assert error["error"]["code"] == "LOCAL_STACK_NOT_RUNNING"


def test_an_unreadable_legacy_file_is_reported_before_anything_is_asked(
        harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    harness.use_function_env("TrainingApiFunction")
    code, error = run(capsys, "backfill", str(tmp_path / "absent.csv"))
    assert code == 1
    assert error["error"]["code"] == "UNREADABLE_FILE"
    assert harness.replicate_calls() == []


def test_a_missing_configuration_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MODELS_TABLE_NAME", raising=False)
    assert main(["show", "anyone"]) == 1
    assert "MISCONFIGURED" in capsys.readouterr().err
