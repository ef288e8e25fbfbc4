"""`python -m infra.local up|token|demo|invoke` — the embedded local stack (REQUIREMENTS §7)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _up(args: argparse.Namespace) -> int:
    from infra.local.stack import LocalStack
    from infra.local.state import state_file, write_state

    with LocalStack.running(host=args.host, port=args.port, replicate_port=args.replicate_port,
                            aws_port=args.aws_port, training_seconds=args.training_seconds,
                            prediction_seconds=args.prediction_seconds, schedules=True,
                            cors_origins=args.cors_origin) as stack:
        write_state(stack)
        print(f"API: {stack.api.url}", flush=True)
        print(f"Console: {stack.api.url}/   (sign in with any user name; the API's page: {stack.api.url}/docs)",
              flush=True)
        print(f"Replicate emulator: {stack.emulator.url}", flush=True)
        print(f"AWS (moto): {stack.aws_endpoint}", flush=True)
        print("Token for a user: python -m infra.local token USER_ID   (Ctrl-C stops the stack)", flush=True)
        try:
            stack.serve_forever()
        finally:
            state_file().unlink(missing_ok=True)
        print("Stopping the local stack.", flush=True)
    return 0


def _token(args: argparse.Namespace) -> int:
    from infra.local.tokens import issue_token

    print(issue_token(args.user_id))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from infra.local.demo import run_demo

    return run_demo(training_seconds=args.training_seconds, prediction_seconds=args.prediction_seconds)


def _invoke(args: argparse.Namespace) -> int:
    from infra.local.invoke import invoke_function

    event: dict[str, Any] = json.loads(Path(args.event).read_text(encoding="utf-8"))
    response = invoke_function(args.function_id, event, aws_endpoint=args.aws_endpoint,
                               replicate_url=args.replicate_url, signing_secret=args.signing_secret)
    print(json.dumps(response, indent=2, default=str))
    status = response.get("statusCode", 200) if isinstance(response, dict) else 200
    return 0 if int(status) < 500 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the local stack and serve until Ctrl-C")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--replicate-port", type=int, default=3001)
    up.add_argument("--aws-port", type=int, default=5000)
    up.add_argument("--training-seconds", type=float, default=5.0)
    up.add_argument("--prediction-seconds", type=float, default=1.0)
    up.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                    help="a browser origin the API allows (repeatable; default: the API's own URL)")
    up.set_defaults(run=_up)

    token = commands.add_parser("token", help="print a bearer token the local API accepts")
    token.add_argument("user_id")
    token.set_defaults(run=_token)

    demo = commands.add_parser("demo", help="run the retraining story on a fresh stack")
    demo.add_argument("--training-seconds", type=float, default=1.0)
    demo.add_argument("--prediction-seconds", type=float, default=0.3)
    demo.set_defaults(run=_demo)

    invoke = commands.add_parser("invoke", help="run one function of template.yaml in-process (sam local invoke)")
    invoke.add_argument("function_id", help="logical id in template.yaml, e.g. ReplicateWebhookFunction")
    invoke.add_argument("-e", "--event", required=True, help="event JSON file (see events/)")
    invoke.add_argument("--aws-endpoint", help="a running local stack's moto endpoint (default: a fresh stack)")
    invoke.add_argument("--replicate-url", help="a running local stack's Replicate emulator")
    invoke.add_argument("--signing-secret", help="the running emulator's webhook signing secret")
    invoke.set_defaults(run=_invoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
