"""`invoke FUNCTION_ID -e EVENT.json`: what `sam local invoke` does, without Docker.

The function is loaded from `template.yaml` with its template environment, against the stack that
`up` is running (found through its state file) or a fresh one started for this call. Webhook
events are re-signed with the stack's signing secret and the current time.
"""

from __future__ import annotations

import uuid
from typing import Any

from infra.local.functions import LocalContext, load_handler
from infra.local.state import LocalStackNotRunning, running_state
from infra.local.template import Template
from infra.resign_event import resign


def _is_webhook(event: dict[str, Any]) -> bool:
    headers = {k.lower() for k in (event.get("headers") or {})}
    return "webhook-signature" in headers


def invoke_function(function_id: str, event: dict[str, Any], *, aws_endpoint: str | None = None,
                    replicate_url: str | None = None, signing_secret: str | None = None) -> Any:
    template = Template()
    spec = template.functions().get(function_id)
    if spec is None:
        raise SystemExit(f"no function {function_id!r} in template.yaml; have: {', '.join(template.functions())}")
    try:
        state: dict[str, Any] | None = running_state()
    except LocalStackNotRunning:
        state = None
    if state is not None and aws_endpoint is None:
        env = state["function_env"][function_id]
        secret = signing_secret or state["signing_secret"]
        return _invoke(spec, env, event, secret)
    from infra.local.stack import LocalStack

    with LocalStack.running(aws_endpoint=aws_endpoint, prefix=f"invoke-{uuid.uuid4().hex[:8]}") as stack:
        env = dict(stack.aws.function_env[function_id])
        if replicate_url:
            env["REPLICATE_BASE_URL"] = replicate_url
        return _invoke(spec, env, event, signing_secret or stack.emulator.signing_secret)


def _invoke(spec: Any, env: dict[str, str], event: dict[str, Any], secret: str) -> Any:
    if _is_webhook(event):
        event = resign(event, secret)
    handler = load_handler(spec, env)
    return handler(event, LocalContext(spec.logical_id))
