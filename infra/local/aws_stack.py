"""Create, on moto (in-process or its server), every AWS resource that `template.yaml` defines,
and compute each function's environment from the template.

Tables get their keys, indexes and TTL from the template; each `EventBridgeRule` of a function
becomes a rule with the template's pattern, targeting an SQS queue that a dispatcher drains, so
moto does the matching, not our code.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from infra.local.template import Resolver, Template

ACCOUNT_ID = "123456789012"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing"}
_TABLE_KEYS = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
               "BillingMode", "StreamSpecification")


@dataclass
class RuleDelivery:
    """Where a function's EventBridge rule delivers locally: a queue the dispatcher drains."""

    function_id: str
    rule_name: str
    queue_url: str


@dataclass
class LocalAwsStack:
    region: str
    endpoint_url: str | None
    resolver: Resolver
    names: dict[str, str] = field(default_factory=dict)  # logical id → physical name (or URL/ARN)
    deliveries: list[RuleDelivery] = field(default_factory=list)
    function_env: dict[str, dict[str, str]] = field(default_factory=dict)
    function_names: dict[str, str] = field(default_factory=dict)  # physical name → logical id

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]


def _physical(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{logical_id}"


def provision(template: Template, *, endpoint_url: str | None, region: str = "us-east-1",
              prefix: str = "lorapin-local", parameters: dict[str, Any] | None = None,
              secret_value: dict[str, str] | None = None, env_overrides: dict[str, str] | None = None,
              api_url: str = "http://127.0.0.1:3000") -> LocalAwsStack:
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, region_name=region,  # type: ignore[call-overload]
                                            endpoint_url=endpoint_url)
        return clients[service]

    params = {**template.parameter_defaults(), **(parameters or {})}
    for name, spec in template.document.get("Parameters", {}).items():  # lists, as CloudFormation has them
        if spec.get("Type") == "CommaDelimitedList" and isinstance(params.get(name), str):
            params[name] = [item.strip() for item in params[name].split(",") if item.strip()]
    pseudo = {"AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::URLSuffix": "amazonaws.com",
              "AWS::StackName": prefix, "AWS::Partition": "aws", "AWS::NoValue": ""}
    refs: dict[str, str] = {}
    attributes: dict[str, dict[str, str]] = {}
    resolver = Resolver(params, refs, attributes, template.document.get("Conditions", {}), pseudo)
    stack = LocalAwsStack(region, endpoint_url, resolver, refs)

    # The Replicate secret: always a local one, seeded with the emulator's token and signing secret.
    secrets = client("secretsmanager")
    secret_arn = secrets.create_secret(Name=f"{prefix}/replicate",
                                       SecretString=json.dumps(secret_value or {}))["ARN"]
    params["ReplicateSecretArn"] = secret_arn

    def active(resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or resolver.condition(resource["Condition"])

    for logical_id, resource in template.resources.items():
        if not active(resource):
            continue
        kind, props = resource.get("Type"), resource.get("Properties", {})
        name = _physical(prefix, logical_id)
        if kind == "AWS::DynamoDB::Table":
            _create_table(client("dynamodb"), name, props)
            refs[logical_id] = name
            attributes[logical_id] = {"Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"}
        elif kind == "AWS::Events::EventBus":
            arn = client("events").create_event_bus(Name=name)["EventBusArn"]
            refs[logical_id], attributes[logical_id] = name, {"Arn": arn, "Name": name}
        elif kind == "AWS::SQS::Queue":
            url = client("sqs").create_queue(QueueName=name)["QueueUrl"]
            arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
            refs[logical_id], attributes[logical_id] = url, {"Arn": arn, "QueueName": name, "QueueUrl": url}
        elif kind == "AWS::S3::Bucket":
            bucket = name.lower()
            client("s3").create_bucket(Bucket=bucket)
            if props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
                # moto then sends every object event to its buses' rules, as S3 does to the default bus
                client("s3").put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
            refs[logical_id], attributes[logical_id] = bucket, {"Arn": f"arn:aws:s3:::{bucket}"}
        elif kind == "AWS::SecretsManager::Secret":
            refs[logical_id] = secret_arn
        elif kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
            refs[logical_id], attributes[logical_id] = "local", {"ApiEndpoint": api_url}
        elif kind == "AWS::SNS::Topic":
            refs[logical_id] = client("sns").create_topic(Name=name)["TopicArn"]
        elif kind == "AWS::Serverless::Function":  # run by the local stack; invoked by this name
            refs[logical_id] = name
            attributes[logical_id] = {"Arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"}
            stack.function_names[name] = logical_id

    # Parameters that name an API URL, e.g. the SSM parameter the functions read.
    for logical_id, resource in template.resources_of_type("AWS::SSM::Parameter").items():
        props = resource.get("Properties", {})
        parameter_name = str(resolver.resolve(props.get("Name", _physical(prefix, logical_id))))
        client("ssm").put_parameter(Name=parameter_name, Value=api_url, Type="String", Overwrite=True)
        refs[logical_id] = parameter_name

    for function_id, spec in template.functions().items():
        env = {key: str(resolver.resolve(value)) for key, value in spec.environment.items()}
        env.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_LAMBDA_FUNCTION_NAME": function_id,
                    "POWERTOOLS_TRACE_DISABLED": "true", "PUBLIC_API_URL": api_url, **LOCAL_CREDENTIALS})
        if endpoint_url:
            env["AWS_ENDPOINT_URL"] = endpoint_url
        env["AWS_ENDPOINT_URL_LAMBDA"] = api_url  # Lambda's Invoke, served by the local API
        env.update(env_overrides or {})
        stack.function_env[function_id] = env
        for rule in spec.rules:
            stack.deliveries.append(_route_rule(client("events"), client("sqs"), prefix, region, rule.function_id,
                                                rule.event_name, refs.get(rule.bus_resource or "", "default"),
                                                resolver.resolve(rule.pattern)))
    return stack


def _create_table(dynamodb: Any, name: str, props: dict[str, Any]) -> None:
    spec = {key: copy.deepcopy(props[key]) for key in _TABLE_KEYS if key in props}
    for index in spec.get("GlobalSecondaryIndexes", []):
        index.pop("ProvisionedThroughput", None)
    spec.setdefault("BillingMode", "PAY_PER_REQUEST")
    dynamodb.create_table(TableName=name, **spec)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": ttl["AttributeName"]})


def _route_rule(events: Any, sqs: Any, prefix: str, region: str, function_id: str, event_name: str,
                bus_name: str, pattern: dict[str, Any]) -> RuleDelivery:
    rule_name = f"{prefix}-{function_id}-{event_name}"[:64]
    queue_name = f"{rule_name}-delivery"[:80]
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    events.put_rule(Name=rule_name, EventBusName=bus_name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=[
        {"Id": "dispatcher", "Arn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue_name}"}])
    return RuleDelivery(function_id, rule_name, queue_url)
