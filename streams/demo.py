"""`engage demo`: the main job on one machine, in one command.

Starts (or reuses) the local broker, creates the topics, runs the worker and a live simulator
as child processes, and prints triggers and scores as they arrive until stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scoring.timeutil import format_rfc3339_ms
from streams.settings import env_broker
from streams.topics import TopicNames, delete_topics, ensure_topics, topic_specs
from streams.watch import watch


def _start(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("ab")
    return subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_demo(
    users: int, speed: float, seconds: float | None, metrics_port: int, web_port: int
) -> int:
    broker = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not broker:
        from deploy.local_kafka import default_broker, up

        local = default_broker()
        print(up(local), flush=True)
        broker = local.bootstrap
    else:
        broker = env_broker()
    # Every demo starts clean: its own topics under the `demo.` prefix and a new app id, so
    # a second run is not judged against the first run's watermarks and state.
    names = TopicNames(prefix="demo.")
    delete_topics(broker, [s.name for s in topic_specs(names, 4)])
    time.sleep(1)
    ensure_topics(broker, names, 4)
    run_id = time.strftime("%Y%m%d%H%M%S")
    logs = Path("var/demo")
    engage = [sys.executable, "-m", "streams.cli"]
    worker = _start(
        [*engage, "worker", "--broker", broker, "--metrics-port", str(metrics_port),
         "--web-port", str(web_port), "--idle-advance-seconds", "10", "--tick-seconds", "2",
         "--topic-prefix", names.prefix, "--app-id", f"engage-demo-{run_id}",
         "--insecure-dev-key"],  # the demo is local: its models may be signed with the dev key
        logs / "worker.log",
    )
    print(f"worker started (pid {worker.pid}); log {logs / 'worker.log'}", flush=True)
    print(f"metrics  http://127.0.0.1:{metrics_port}/metrics", flush=True)
    print(f"lookup   http://127.0.0.1:{web_port}/users/<user_id>/   "
          f"leaderboard http://127.0.0.1:{web_port}/leaderboard/", flush=True)
    time.sleep(8)  # let the worker join its group before traffic starts
    # 60 simulated days ending now: paced live, event time never runs ahead of the clock
    start_ms = int(time.time() * 1000) - 60 * 86_400_000
    simulator = _start(
        [*engage, "simulate", "--users", str(users), "--days", "60",
         "--topic", names.interactions, "--start", format_rfc3339_ms(start_ms),
         "--broker", broker, "--live", "--speed", str(speed), "--no-progress",
         "--invalid-share", "0.01"],
        logs / "simulator.log",
    )
    print(f"simulator started (pid {simulator.pid}): {users} users, {speed:.0f}x real time; "
          "triggers follow (Ctrl-C stops)\n", flush=True)
    try:
        watch(broker, seconds=seconds, names=names)
    finally:
        _stop(simulator)
        _stop(worker)
        print("\nworker and simulator stopped; the broker keeps running "
              "(stop it with: engage broker down)")
    return 0
