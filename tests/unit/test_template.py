"""template.yaml's hardening, checked on the document itself: scoped policies, an alarm on every
dead-letter queue, canary deploys that roll back on alarms, throttling, and reserved concurrency only when asked for."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.local.template import Template, load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
SCOPED = {"ModelsTable", "TrainingsTable", "VersionsTable", "GenerationsTable", "EventBus", "MediaBucket"}


def refs_in(value: Any) -> set[str]:
    """Every logical id a value refers to (Ref, GetAtt, or ${X} inside Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(str(value["Ref"]))
        if "Fn::GetAtt" in value:
            found.add(str(value["Fn::GetAtt"][0]))
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}]+)\}", text)}
        for inner in value.values():
            found |= refs_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs_in(inner)
    return found


def policy_statements() -> list[tuple[str, dict[str, Any]]]:
    """Inline statements of every function policy and every IAM/resource policy in the template."""
    statements: list[tuple[str, dict[str, Any]]] = []
    for name, function in FUNCTIONS.items():
        for policy in function["Properties"].get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                statements += [(name, s) for s in policy["Statement"]]
    for name, resource in RESOURCES.items():
        document = resource.get("Properties", {}).get("PolicyDocument")
        if document:
            statements += [(name, s) for s in document["Statement"]]
    return statements


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_function_policies_are_sam_templates_scoped_to_one_of_our_resources(function_id: str) -> None:
    for policy in FUNCTIONS[function_id]["Properties"].get("Policies", []):
        assert isinstance(policy, dict), f"{function_id}: managed policy by name {policy!r} is not scoped"
        ((template_name, arguments),) = policy.items()
        if template_name == "Statement":
            continue
        assert refs_in(arguments) or "ParameterName" in arguments, f"{function_id}: {template_name} has no scope"
        for argument in arguments.values():
            assert argument != "*" and "*" not in json.dumps(argument), f"{function_id}: {template_name} uses *"


# What each function's code reads (r) and writes (w), by table: measured on the bench's day, where
# each function runs in its own process and moto logs every DynamoDB request by its caller, plus
# paths the day does not take (a generation pinned to a `version_id` reads Versions).
TABLE_ACCESS = {
    "ReplicateWebhookFunction": {"ModelsTable": "rw", "TrainingsTable": "rw", "VersionsTable": "w",
                                 "GenerationsTable": "rw"},
    "GenerationFunction": {"ModelsTable": "rw", "GenerationsTable": "rw", "VersionsTable": "r",
                           "TrainingsTable": "w"},  # a consumed activation clears its training's outbox
    "TrainingApiFunction": {"ModelsTable": "rw", "TrainingsTable": "rw", "VersionsTable": "rw",
                            "GenerationsTable": "rw", "PhotosTable": "rw", "PhotoSetsTable": "rw", "StateTable": "r"},
    "PhotoInspectorFunction": {"PhotosTable": "rw"},
    "TrainingSubmitFunction": {"ModelsTable": "rw", "TrainingsTable": "rw", "PhotoSetsTable": "r", "StateTable": "r"},
    "ReconcilerFunction": {"ModelsTable": "rw", "TrainingsTable": "rw", "VersionsTable": "rw",
                           "GenerationsTable": "rw", "StateTable": "rw"},
}
TABLE_POLICY_GRANTS = {"DynamoDBCrudPolicy": "rw", "DynamoDBReadPolicy": "r", "DynamoDBWritePolicy": "w"}


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_function_may_read_and_write_the_tables_its_code_does(function_id: str) -> None:
    granted: dict[str, str] = {}
    for policy in FUNCTIONS[function_id]["Properties"].get("Policies", []):
        ((template_name, arguments),) = policy.items()
        if template_name in TABLE_POLICY_GRANTS:
            (table,) = refs_in(arguments)
            granted[table] = granted.get(table, "") + TABLE_POLICY_GRANTS[template_name]
    missing = {table: needed for table, needed in TABLE_ACCESS[function_id].items()
               if not set(needed) <= set(granted.get(table, ""))}
    assert not missing, f"{function_id} is denied {missing} by its policies"


def test_no_statement_allows_wildcard_actions_or_resources_on_table_bus_or_bucket() -> None:
    for owner, statement in policy_statements():
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), f"{owner}: {actions}"
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        assert "*" not in resources, f"{owner} allows Resource *"


def test_every_function_policy_names_only_our_resources() -> None:
    for function_id, function in FUNCTIONS.items():
        named = refs_in(function["Properties"].get("Policies", []))
        assert named & SCOPED, function_id
        assert named <= set(RESOURCES) | {"Stage", "ReplicateSecretArn"}, f"{function_id}: {named - set(RESOURCES)}"


def test_every_queue_has_an_alarm_on_its_depth() -> None:
    queues = {k for k, v in RESOURCES.items() if v["Type"] == "AWS::SQS::Queue"}
    watched = {next(iter(refs_in(v["Properties"]["Dimensions"])))
               for v in RESOURCES.values() if v["Type"] == "AWS::CloudWatch::Alarm"
               and v["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    assert queues and queues <= watched


def test_api_5xx_and_version_drift_have_alarms_that_notify() -> None:
    alarms = {v["Properties"]["MetricName"]: v["Properties"] for v in RESOURCES.values()
              if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms["5xx"]["Namespace"] == "AWS/ApiGateway"
    assert alarms["VersionDrift"]["Namespace"] == "Lorapin"
    assert all(a.get("AlarmActions") for a in alarms.values())


def test_deploys_are_canaries_in_prod_that_roll_back_on_their_alarms() -> None:
    assert TEMPLATE["Globals"]["Function"]["AutoPublishAlias"]
    for function_id, function in FUNCTIONS.items():
        preference = function["Properties"]["DeploymentPreference"]
        assert preference["Alarms"], function_id
        assert all(refs_in(alarm) <= set(RESOURCES) for alarm in preference["Alarms"])
    webhook_type = FUNCTIONS["ReplicateWebhookFunction"]["Properties"]["DeploymentPreference"]["Type"]
    assert webhook_type["Fn::If"][1].startswith("Canary")


def test_the_api_is_throttled() -> None:
    api = next(v for v in RESOURCES.values() if v["Type"] == "AWS::Serverless::HttpApi")
    throttling = api["Properties"]["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] > 0 and throttling["ThrottlingRateLimit"] > 0


def reservation_problems(template: dict[str, Any]) -> list[str]:
    """Why a template would not deploy on a new account: any reserved concurrency that is not a
    parameter left empty by default. A new account's concurrency limit can be as low as 10, and Lambda
    keeps 100 unreserved, so a hard-coded reservation fails the first deploy."""
    parameters = template.get("Parameters", {})
    conditions = template.get("Conditions", {})
    problems = []
    functions = [(k, v["Properties"]) for k, v in template["Resources"].items()
                 if v["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")]
    for name, props in [("Globals", template.get("Globals", {}).get("Function", {})), *functions]:
        if "ReservedConcurrentExecutions" not in props:
            continue
        value = props["ReservedConcurrentExecutions"]
        branches = value.get("Fn::If") if isinstance(value, dict) else None
        if not branches or branches[2] != {"Ref": "AWS::NoValue"}:
            problems.append(f"{name}: reserved concurrency {value!r} is not conditional on a parameter")
            continue
        condition, reserved = branches[0], branches[1]
        parameter = parameters.get(reserved.get("Ref", "") if isinstance(reserved, dict) else "")
        if parameter is None:
            problems.append(f"{name}: reserved concurrency {reserved!r} is not a parameter")
        elif parameter.get("Default") != "":
            problems.append(f"{name}: its parameter {reserved['Ref']} reserves by default")
        elif conditions.get(condition) != {"Fn::Not": [{"Fn::Equals": [reserved, ""]}]}:
            problems.append(f"{name}: condition {condition} is not 'the parameter is set'")
    return problems


def test_reserved_concurrency_is_a_parameter_unreserved_by_default() -> None:
    assert reservation_problems(TEMPLATE) == []
    for function_id in ("ReplicateWebhookFunction", "ReconcilerFunction"):  # still reservable where it matters
        reserved = FUNCTIONS[function_id]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"][1]["Ref"]
        assert TEMPLATE["Parameters"][reserved]["AllowedPattern"] == "^([1-9][0-9]*)?$"


def test_the_reservation_check_catches_a_hard_coded_reservation() -> None:
    hard_coded = {"Resources": {"F": {"Type": "AWS::Serverless::Function",
                                      "Properties": {"ReservedConcurrentExecutions": 50}}}}
    assert reservation_problems(hard_coded) == ["F: reserved concurrency 50 is not conditional on a parameter"]
    by_default = {"Parameters": {"P": {"Type": "String", "Default": "50"}},
                  "Conditions": {"C": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}},
                  "Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {
                      "ReservedConcurrentExecutions": {"Fn::If": ["C", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]}}}}}
    assert reservation_problems(by_default) == ["F: its parameter P reserves by default"]


def test_async_invocations_and_rule_deliveries_have_dead_letter_queues() -> None:
    for function_id in ("GenerationFunction", "ReconcilerFunction"):
        assert FUNCTIONS[function_id]["Properties"]["DeadLetterQueue"]["Type"] == "SQS"
    for function in FUNCTIONS.values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "EventBridgeRule":
                assert event["Properties"]["DeadLetterConfig"]["Arn"]
                assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_only_webhook_routes_and_the_api_document_skip_the_jwt_authorizer() -> None:
    for function in FUNCTIONS.values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            unauthenticated = event["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
            path = event["Properties"]["Path"]
            assert unauthenticated == (path.startswith("/webhooks/replicate/") or path in ("/openapi.json", "/docs"))


def test_tables_have_point_in_time_recovery_and_encryption() -> None:
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            props = resource["Properties"]
            assert props["BillingMode"] == "PAY_PER_REQUEST", name
            assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], name
            assert props["SSESpecification"]["SSEEnabled"], name


def test_cors_allows_the_origins_of_a_parameter_none_by_default_and_every_route_method() -> None:
    parameter = TEMPLATE["Parameters"]["CorsAllowedOrigins"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == ""  # no browser origin unless a deployment names one
    api = next(v for v in RESOURCES.values() if v["Type"] == "AWS::Serverless::HttpApi")
    # SAM takes an intrinsic only for the whole configuration: no origins, no CORS at all
    condition, cors, otherwise = api["Properties"]["CorsConfiguration"]["Fn::If"]
    assert cors["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"} and otherwise == {"Ref": "AWS::NoValue"}
    assert TEMPLATE["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CorsAllowedOrigins"}]}, ""]}]}
    browser_routes = {route.method for route in Template().routes() if route.authorized}
    assert browser_routes <= set(cors["AllowMethods"])
    assert {"authorization", "content-type"} <= set(cors["AllowHeaders"])
    assert "retry-after" in cors["ExposeHeaders"]  # 429 and 503 answers say when to retry
    assert "AllowCredentials" not in cors  # bearer tokens, not cookies
