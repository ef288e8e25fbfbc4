"""`python -m infra.bench.capacity [FILE]`: from the writes a realistic day made per partition key
value (counted by the atomic moto server, `infra/local/partition_log.py`), the load each key of each
table and index would take at the target peak (REQUIREMENTS §11): 1M users, 200 generations a
second, 20 trainings a minute. docs/CAPACITY.md explains the arithmetic.

Each key value is of one of three kinds:
- a shard (`t7`, `g3`, `m0`, `d12`): the sparse indexes of what is in flight, and the drift index;
  their load grows with the whole system's, spread over the shards;
- a user's key (`user_id` as a table's or an index's partition): its load is one user's, bounded by
  what one user can do (the per-user limits), however many users there are;
- an object's key (a training, a generation, a webhook-id): written a handful of times in its life.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.bench.table import Row, render
from infra.local.template import REPO_ROOT

DAY_PARTITIONS = REPO_ROOT / "build" / "bench" / "day-partitions.json"
PARTITION_WRITE_UNITS = 1000  # DynamoDB's per-partition limit, write units a second
PEAK_GENERATIONS_PER_SECOND = 200.0
PEAK_TRAININGS_PER_SECOND = 20 / 60
PER_USER_GENERATIONS_PER_SECOND = 20 / 60  # the per-user limit (POST /generations, 20 a minute)
PER_USER_TRAININGS_PER_SECOND = 1 / (15 * 60)  # one in flight at a time, 15 minutes at the least
SHARD = re.compile(r"^[tgmd]\d+$")
USER_KEYED = {("Models", ""), ("Versions", ""), ("Trainings", "by_user"), ("Generations", "by_user"),
              ("Generations", "waiting")}


@dataclass(frozen=True)
class KeyLoad:
    table: str
    index: str
    kind: str  # shard | user | object
    hottest: str
    units_per_event: float  # write units the hottest key takes per driving event (or per user event)
    peak_units_per_second: float

    @property
    def share_of_limit(self) -> float:
        return self.peak_units_per_second / PARTITION_WRITE_UNITS


def table_of(physical: str) -> str:
    """`day-ab12cd-TrainingsTable` → `Trainings`."""
    return physical.rsplit("-", 1)[-1].removesuffix("Table")


def project(data: dict[str, Any]) -> list[KeyLoad]:
    """The projected peak load of the hottest key of each (table, index)."""
    trainings, generations = max(1, int(data["trainings"])), max(1, int(data["generations"]))
    events = {"Trainings": trainings, "Generations": generations, "Models": trainings,
              "Versions": trainings, "Idempotency": trainings + generations, "State": 1}
    peak_events = {"Trainings": PEAK_TRAININGS_PER_SECOND, "Generations": PEAK_GENERATIONS_PER_SECOND,
                   "Models": PEAK_TRAININGS_PER_SECOND,
                   "Versions": PEAK_TRAININGS_PER_SECOND,
                   "Idempotency": PEAK_TRAININGS_PER_SECOND + PEAK_GENERATIONS_PER_SECOND}
    per_user_events = PER_USER_GENERATIONS_PER_SECOND + PER_USER_TRAININGS_PER_SECOND
    groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for physical, index, value, units in data["write_units"]:
        groups[(table_of(physical), index)].append((value, int(units)))
    loads = []
    for (table, index), keys in sorted(groups.items()):
        hottest, units = max(keys, key=lambda k: k[1])
        total = sum(u for _, u in keys)
        if table == "State":  # the reconciler's cursor: one write a run (a few units), whatever the load
            loads.append(KeyLoad(table, index, "object", hottest, 4, 4 / 60))  # a run a minute at most
        elif SHARD.match(hottest):
            shards = len(keys)
            imbalance = units / (total / shards)  # the busiest shard against the mean, as the day saw it
            per_event = total / events.get(table, 1)
            peak = per_event * peak_events.get(table, 0.0) / shards * imbalance
            loads.append(KeyLoad(table, index, "shard", hottest, per_event, peak))
        elif (table, index) in USER_KEYED:
            users = max(1, len(keys))
            per_user_event = units / max(1.0, events.get(table, 1) / users)
            loads.append(KeyLoad(table, index, "user", hottest, per_user_event, per_user_event * per_user_events))
        else:  # an object's key: its whole life's writes, as if all in one second
            loads.append(KeyLoad(table, index, "object", hottest, units, float(units)))
    return loads


def capacity_rows(path: Path = DAY_PARTITIONS) -> list[Row]:
    if not path.exists():
        return [Row("capacity at the target peak", f"no counts at {path}: run the day first", ok=False)]
    loads = project(json.loads(path.read_text(encoding="utf-8")))
    worst = max(loads, key=lambda load: load.share_of_limit)
    rows = [Row("capacity at 1M users, 200 generations/s, 20 trainings/min: the busiest partition key",
                f"{worst.table}/{worst.index or 'table'} ({worst.kind} {worst.hottest}): "
                f"{worst.peak_units_per_second:.1f} WCU/s", f"{PARTITION_WRITE_UNITS} WCU/s",
                f"{worst.share_of_limit:.1%}", "<= 50%", worst.share_of_limit <= 0.5)]
    for load in sorted(loads, key=lambda item: -item.share_of_limit)[:8]:
        rows.append(Row(f"  {load.table}/{load.index or 'table'} ({load.kind} keys, e.g. {load.hottest[:24]})",
                        f"{load.peak_units_per_second:.2f} WCU/s", ratio=f"{load.share_of_limit:.2%}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or [str(DAY_PARTITIONS)])[0])
    rows = capacity_rows(path)
    print(render(rows))
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

