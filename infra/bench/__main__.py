"""`python -m infra.bench [--quick]`: start a fresh local stack, measure, print one table (REQUIREMENTS §10).

Exits 0 when a ratio target is missed (that is a measurement) and 1 when correctness fails:
a wrong current version, a lost or duplicated event, an accepted forgery, a misrouted delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

from infra.bench.artifact_size import measure_artifacts
from infra.bench.capacity import DAY_PARTITIONS, capacity_rows
from infra.bench.cold_start import measure_cold_starts
from infra.bench.containers import process_containers
from infra.bench.day import DayPlan, run_day
from infra.bench.latency import latency_users, measure_generation_latency, measure_webhook_latency
from infra.bench.mixed import run_mixed
from infra.bench.photos import inspection_memory_row, inspection_rows, start_latency_rows, zip_memory_row
from infra.bench.replicate_calls import FlowFailed, measure_replicate_calls
from infra.bench.seeding import Seeder
from infra.bench.table import Row, render
from infra.local.moto_server import AtomicMotoServer
from infra.local.stack import LocalStack

HOLD_TRAININGS_SECONDS = 3600.0  # the emulator never finishes a seeded training on its own


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _functions_log_to_stderr() -> None:
    """Functions running in this process log to stderr, errors only, so stdout holds the table alone."""
    from lorapin.observability import logger

    logger.setLevel(logging.ERROR)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lorapin-bench-") as folder:
        yield folder


@contextlib.contextmanager
def _atomic_moto() -> Iterator[AtomicMotoServer]:
    server = AtomicMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer of everything: 200 webhooks, 20 users, 30 timed requests")
    parser.add_argument("--webhooks", type=int, help="mixed webhooks to send (default 1000)")
    parser.add_argument("--users", type=int, help="users in the mixed run (default 100)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--requests", type=int, help="timed webhook requests (default 100)")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh processes per module (default 5)")
    parser.add_argument("--containers", type=int, default=4, help="warm containers per function (default 4)")
    parser.add_argument("--only", choices=["day", "photos", "core"],
                        help="run one part of the bench alone (core: everything but the day)")
    parser.add_argument("--day-rate", type=float, help="the day's clock acceleration (default 120; 240 with --quick)")
    parser.add_argument("--stock-stack", action="store_true",
                        help="run the functions as `make run` does: thread containers in this process, taking "
                             "turns because Powertools keeps per-request state on classes (see containers.py)")
    args = parser.parse_args(argv)
    args.webhooks = args.webhooks or (200 if args.quick else 1000)
    args.users = args.users or (20 if args.quick else 100)
    args.requests = args.requests or (30 if args.quick else 100)
    if min(args.webhooks, args.users, args.senders, args.requests, args.import_runs, args.containers) < 1:
        parser.error("every count must be at least 1")
    return args


def realistic_day(args: argparse.Namespace) -> tuple[list[Row], bool]:
    """REQUIREMENTS §11's day, on a stack of its own (its clock runs fast); the capacity model's input."""
    plan = DayPlan.quick() if args.quick else DayPlan()
    if args.day_rate:
        plan = replace(plan, clock_rate=args.day_rate)
    outcome = run_day(plan, _progress, partitions_file=DAY_PARTITIONS)
    rows = [*outcome.rows, *capacity_rows(DAY_PARTITIONS)]
    return rows, outcome.failed


def run(args: argparse.Namespace) -> tuple[list[Row], bool]:
    """Every measurement, on one fresh stack; the rows and whether correctness failed."""
    if args.only == "day":
        return realistic_day(args)
    rows: list[Row] = []
    failed = False
    with contextlib.ExitStack() as resources:
        _progress("starting the local stack")
        moto = resources.enter_context(_atomic_moto())  # ours, to count each function's AWS requests
        endpoint = "http://{}:{}".format(*moto.get_host_and_port())
        stack = resources.enter_context(LocalStack.running(
            quiet=True, aws_endpoint=endpoint, training_seconds=HOLD_TRAININGS_SECONDS, prediction_seconds=0.2,
            pool_size=args.containers if args.stock_stack else 1))
        _functions_log_to_stderr()
        if not args.stock_stack:
            resources.enter_context(process_containers(stack, args.containers))
        if args.only in (None, "core"):
            _progress(f"cold starts of the built artifact ({args.import_runs} fresh processes each)")
            rows += measure_cold_starts(stack.aws.function_env, runs=args.import_runs)
            seeder = Seeder(stack)
            _progress(f"webhook latency ({args.requests} activations)")
            rows += measure_webhook_latency(stack, seeder, args.requests, moto.calls)
            _progress(f"POST /generations latency ({args.requests} requests)")
            rows += measure_generation_latency(stack, latency_users(args.requests), args.requests, moto.calls)
            _progress(f"{args.webhooks} mixed webhooks, {args.users} users, {args.senders} senders")
            mixed = run_mixed(stack, seeder, users=args.users, total=args.webhooks, senders=args.senders)
            rows += mixed.rows
            failed |= mixed.failed
            _progress("deployment artifact sizes (sam build for arm64, as it ships)")
            rows += measure_artifacts()
        _progress("photos: inspection, POST /trainings with 25 and 200 photos, zipping 200 x 20 MB")
        rows += inspection_rows()
        rows.append(inspection_memory_row(str(resources.enter_context(_scratch()))))
        rows += start_latency_rows(stack, _progress, sizes=((25, 3), (200, 2)) if args.quick else ((25, 5), (200, 3)))
        rows.append(zip_memory_row(stack, members=20 if args.quick else 200))
        if args.only in (None, "core"):
            _progress("Replicate calls per training")
            try:
                rows += measure_replicate_calls(stack)
            except FlowFailed as exc:
                rows.append(Row("Replicate API calls per completed training", f"flow failed: {exc}", ok=False))
                failed = True
    if args.only in ("photos", "core"):
        return rows, failed
    _progress("a realistic day")
    day_rows, day_failed = realistic_day(args)
    return rows + day_rows, failed or day_failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # anything the functions print in this process
        rows, failed = run(args)
    print(render(rows))
    if args.stock_stack:
        setup = f"stack as shipped: {args.containers} thread containers per function, one invocation at a time"
    else:
        setup = f"moto with atomic DynamoDB, {args.containers} process containers per function"
    print(f"\n{'FAILED' if failed else 'OK'}: bench took {time.monotonic() - started:.0f}s ({setup})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
