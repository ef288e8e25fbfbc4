"""Read `template.yaml` the way the local stack needs it: resources, functions, their routes,
EventBridge rules and environment, with CloudFormation intrinsics resolved against local values.

The local stack is built from this, so a change to the template changes what runs locally.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns `!Ref x` into `{"Ref": x}`, `!Sub s` into `{"Fn::Sub": s}`, and so on."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (a fresh copy each call: callers may change it)."""
    text = path.read_text(encoding="utf-8")
    return copy.deepcopy(_parse(text))


@functools.lru_cache(maxsize=4)
def _parse(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)
    return parsed


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form, e.g. /generations/{id}
    function_id: str
    authorized: bool

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class EventRule:
    function_id: str
    event_name: str
    bus_resource: str | None
    pattern: dict[str, Any]


@dataclass(frozen=True)
class ScheduleRule:
    """A function's `Schedule` event: its expression, as the template gives it (maybe a `Ref`)."""

    function_id: str
    event_name: str
    expression: Any


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    rules: list[EventRule] = field(default_factory=list)
    schedules: list[ScheduleRule] = field(default_factory=list)


class Template:
    def __init__(self, document: dict[str, Any] | None = None, *, root: Path = REPO_ROOT) -> None:
        self.document = document if document is not None else load_template()
        self.root = root
        self.resources: dict[str, Any] = self.document.get("Resources", {})
        self.globals: dict[str, Any] = self.document.get("Globals", {}).get("Function", {})

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r.get("Type") == resource_type}

    def parameter_defaults(self) -> dict[str, Any]:
        return {name: spec.get("Default", "") for name, spec in self.document.get("Parameters", {}).items()}

    def functions(self) -> dict[str, FunctionSpec]:
        default_auth = self._default_authorizer()
        specs = {}
        for logical_id, resource in self.resources_of_type("AWS::Serverless::Function").items():
            props = resource.get("Properties", {})
            env = dict(self.globals.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            spec = FunctionSpec(logical_id, self.root / props.get("CodeUri", self.globals.get("CodeUri", ".")),
                                props.get("Handler", self.globals.get("Handler", "app.lambda_handler")), env)
            for event_name, event in (props.get("Events") or {}).items():
                event_props = event.get("Properties", {})
                if event.get("Type") == "HttpApi":
                    authorizer = (event_props.get("Auth") or {}).get("Authorizer", default_auth)
                    spec.routes.append(Route(event_props["Method"].upper(), event_props["Path"], logical_id,
                                             authorized=bool(authorizer) and authorizer != "NONE"))
                elif event.get("Type") == "EventBridgeRule":
                    bus = event_props.get("EventBusName")
                    bus_resource = bus.get("Ref") if isinstance(bus, dict) else None
                    spec.rules.append(EventRule(logical_id, event_name, bus_resource, event_props["Pattern"]))
                elif event.get("Type") == "Schedule":
                    spec.schedules.append(ScheduleRule(logical_id, event_name, event_props["Schedule"]))
            specs[logical_id] = spec
        return specs

    def routes(self) -> list[Route]:
        return [route for spec in self.functions().values() for route in spec.routes]

    def _default_authorizer(self) -> str | None:
        for api in self.resources_of_type("AWS::Serverless::HttpApi").values():
            auth = api.get("Properties", {}).get("Auth", {})
            if auth.get("DefaultAuthorizer"):
                return str(auth["DefaultAuthorizer"])
        return None


class Resolver:
    """Resolve the intrinsics the template uses (Ref, Sub, GetAtt, If, Equals, Not, Join, Select)
    against the local stack's values."""

    def __init__(self, parameters: dict[str, Any], refs: dict[str, str], attributes: dict[str, dict[str, str]],
                 conditions: dict[str, Any], pseudo: dict[str, str]) -> None:
        self.parameters = parameters
        self.refs = refs
        self.attributes = attributes
        self.conditions = conditions
        self.pseudo = pseudo

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attributes.get(name, {}).get(attribute, f"{name}.{attribute}")
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(self.resolve(item)) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._evaluate(key, arg)
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def _evaluate(self, key: str, arg: Any) -> bool:
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(item) for item in arg)
        if key == "Fn::Or":
            return any(self.resolve(item) for item in arg)
        return self.condition(arg)

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.refs.get(name, name)

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return str(self.resolve(variables[token]))
            if "." in token:
                name, attribute = token.split(".", 1)
                return str(self.attributes.get(name, {}).get(attribute, token))
            return str(self._ref(token))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
