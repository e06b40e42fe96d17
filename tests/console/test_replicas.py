"""Exactly one scheduler active (issue 18): two real `celery beat` processes, the active one SIGKILLed at a seeded
random point; the standby sent nothing before, takes over within the lease period, and no job is sent twice. And
one sampling pass at a time across workers. The seed is printed (run with -s); SCALE_SEED=<n> replays one run."""

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
from django.conf import settings

from console import leases
from console.beat import LEASE
from console.models import Lease
from tests.conftest import ROOT
from tests.dlq import procs
from tests.dlq.conftest import wait_until

LEASE_SECONDS = 6
SENT = re.compile(r"Scheduler: Sending due task (\S+)")


def _beat(log, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "console", "beat", "-l", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Watcher(threading.Thread):
    """Timestamps each "Sending due task" line of each beat's log as it appears (every 20 ms; the project's log
    format has no time of its own)."""

    def __init__(self, logs):
        super().__init__(daemon=True)
        self.logs = logs
        self.sent: list[list[tuple[float, str]]] = [[] for _ in logs]
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for n, log in enumerate(self.logs):
                jobs = SENT.findall(log.read_text()) if log.exists() else []
                now = time.time()
                self.sent[n] += [(now, job) for job in jobs[len(self.sent[n]) :]]
            time.sleep(0.02)


def test_it_keeps_one_beat_active_and_fails_over_without_sending_a_job_twice(transactional_db, tmp_path):
    seed = int(os.environ.get("SCALE_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    namespace = f"beat-{uuid.uuid4().hex[:8]}"
    env = {
        **procs.env(),
        "SWITCHYARD_NAMESPACE": namespace,  # its own Celery queue in Redis, counted below
        "BEAT_LEASE_SECONDS": str(LEASE_SECONDS),
        "SAMPLER_INTERVAL_SECONDS": "1",  # a job every second, so a doubled one would show
    }
    logs = [tmp_path / "beat-0.log", tmp_path / "beat-1.log"]
    watcher = Watcher(logs)
    watcher.start()
    beats = [_beat(log, env) for log in logs]
    try:
        lease = wait_until(lambda: Lease.objects.filter(name=LEASE).first(), 60)
        active = next(n for n, b in enumerate(beats) if f":{b.pid}:" in lease.holder)
        standby = 1 - active
        wait_until(lambda: watcher.sent[active], 30)
        time.sleep(rng.uniform(1, 4))
        procs.kill(beats[active])
        killed_at = time.time()
        time.sleep(0.1)  # the watcher's last look at the dead one's log
        assert not watcher.sent[standby], "the standby sent jobs while the other was active"
        wait_until(lambda: watcher.sent[standby], 60)
        took_over = watcher.sent[standby][0][0] - killed_at
        time.sleep(3)
        beats[standby].terminate()
        assert beats[standby].wait(15) == 0
        time.sleep(0.1)
    finally:
        watcher.stopping.set()
        for b in beats:
            procs.kill(b)

    before, after = watcher.sent[active], watcher.sent[standby]
    samples = sorted(at for at, job in before + after if job == "monitoring-sample")
    gaps = [b - a for a, b in zip(samples, samples[1:], strict=False)]
    queued = _queued_jobs(namespace)
    print(
        f"\nbeat: 2 replicas, lease {LEASE_SECONDS} s, seed {seed}: the active one sent {len(before)} jobs, killed; "
        f"the standby's first job {took_over:.1f} s later, then {len(after)} jobs; smallest gap between two "
        f"monitoring-sample sends {min(gaps):.2f} s (interval 1 s); {len(queued)} messages in the queue"
    )
    assert all(at <= killed_at + 0.1 for at, _ in before)
    assert took_over <= 60 and took_over <= LEASE_SECONDS + LEASE_SECONDS / 3 + 2
    assert min(gaps) >= 0.8  # never the same job from both (20 ms watch resolution either side)
    assert len(queued) == len(before) + len(after)  # what the logs say is all that was sent


def _queued_jobs(namespace: str) -> list[str]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.lrange(namespace, 0, -1)
        return [json.loads(m)["headers"]["task"] for m in raw]
    finally:
        client.delete(namespace)
        client.close()


@pytest.mark.django_db(transaction=True)
def test_it_runs_one_sampling_pass_at_a_time_and_frees_a_dead_ones_lease(settings):
    from monitoring import tasks

    started, release = threading.Event(), threading.Event()
    results = []

    def slow_pass():
        with leases.alone("monitoring-sampler", 30) as mine:
            started.set()
            release.wait(10) if mine else None
        from django.db import connection

        connection.close()

    holder = threading.Thread(target=slow_pass)
    holder.start()
    try:
        assert started.wait(10)
        results.append(tasks.sample())  # another worker's pass runs: this one is skipped
    finally:
        release.set()
        holder.join(10)
    assert results == [None]
    assert isinstance(tasks.sample(), dict)  # free again

    # A worker killed mid-pass leaves its lease; it runs out, and the next pass goes ahead.
    settings.SAMPLER_LEASE_SECONDS = 5
    assert leases.acquire("monitoring-sampler", "dead-worker:1:x", 1)
    assert tasks.sample() is None
    time.sleep(1.2)
    assert isinstance(tasks.sample(), dict)
