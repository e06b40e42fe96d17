"""Crash drills: SIGKILL a working process at seeded random points, start it again, and count what was lost and what
was duplicated once it has finished. Each drill runs the real process (`manage.py …`, a Celery worker), kills it
after a random amount of progress plus a random few milliseconds (so kills land inside a batch: after the database
commit and before the broker ack, or before the commit), and counts a restart as survived when the next process moves
the work on. A duplicate counts only when it is outside the at-least-once window or carries no provenance.

The seed (DRILLS_SEED) makes the kill points replayable; the timing of a busy machine still varies around them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.dlq import procs

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Counts:
    inputs: int = 0
    lost: int = 0
    duplicated: int = 0  # repeats, all inside the at-least-once window
    restarts: int = 0
    unmarked: int = 0  # repeats without provenance (or outside the window): must be 0

    def figures(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "unmarked"}


def _grow(count, target: int, proc, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while count() < target:
        if proc.poll() is not None:
            raise AssertionError(f"the process exited early ({proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"no progress to {target} in {seconds} s (at {count()})")
        time.sleep(0.005)


def _kill_loop(rng: random.Random, kills: int, start, count, total: int, log: Path) -> int:
    """Start, wait for some progress, SIGKILL, `kills` times; the number of restarts that moved the work on."""
    survived, before = 0, count()
    for _ in range(kills):
        proc = start()
        try:
            done = count()
            if done >= total:
                procs.kill(proc)
                break
            _grow(count, min(total, done + rng.randint(1, max(2, (total - done) // (kills + 1)))), proc)
            time.sleep(rng.uniform(0, 0.03))
        except AssertionError as e:
            raise AssertionError(f"{e}\n{log.read_text()[-3000:]}") from None
        finally:
            procs.kill(proc)
        survived += count() > before
        before = count()
    return survived


def saga_ingest(kills: int, seed: int, tmp_path: Path, n: int = 1500) -> Counts:
    """`manage.py ingest_saga_events` on a topic of its own: n events, one per message."""
    from brokers.base import OutgoingMessage
    from brokers.kafka import KafkaAdapter
    from sagas.models import SagaStepEvent
    from tests.sagas.helpers import ev

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    topic, group = f"drill-crash-sagas-{run}", f"drill-crash-{run}"
    # On tansu (started by `tools.services run --with-tansu`): noida-db, the suite's default Kafka, never expires a
    # killed member's session, so no restarted consumer of the group is ever given its partitions there.
    tansu = os.environ.get("TANSU_BOOTSTRAP_SERVERS")
    assert tansu, "run under `python -m tools.services run --with-tansu` (make test / make drills do)"
    kafka = KafkaAdapter(tansu, {"session.timeout.ms": 6000})
    kafka.ensure_destination(topic)
    env = {"KAFKA_BOOTSTRAP_SERVERS": tansu, "SAGA_INGEST_SESSION_TIMEOUT_MS": "6000"}
    try:
        events = [ev(f"crash-{run}-{i % 40}", f"s{i}", seq=i + 1, event_id=f"crash-{run}-{i}") for i in range(n)]
        kafka.publish_batch([OutgoingMessage(topic, json.dumps(e).encode()) for e in events])
        stored = SagaStepEvent.objects.filter(event_id__startswith=f"crash-{run}-")
        log = tmp_path / f"sagas-{run}.log"
        argv = ("ingest_saga_events", "--topic", topic, "--group", group)
        survived = _kill_loop(rng, kills, lambda: procs.manage(*argv, log=log, extra_env=env), stored.count, n, log)
        started = log.read_text().count("ingesting saga events")
        final = procs.manage(*argv, log=log, extra_env=env)
        try:
            deadline = time.monotonic() + 120
            # Up (its SIGTERM handler set) before it is asked to stop, even when the killed ones left nothing to do.
            while log.read_text().count("ingesting saga events") == started and time.monotonic() < deadline:
                assert final.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)
            while stored.count() < n and time.monotonic() < deadline and final.poll() is None:
                time.sleep(0.1)
            final.send_signal(signal.SIGTERM)
            assert final.wait(30) == 0, log.read_text()[-3000:]
        finally:
            procs.kill(final)
        ids = list(stored.values_list("event_id", flat=True))
        # An event read again after a kill between the commit and the offset commit is the at-least-once window: its
        # event id (the provenance) makes the repeat a no-op, so no row is ever doubled.
        return Counts(inputs=n, lost=n - len(set(ids)), duplicated=len(ids) - len(set(ids)), restarts=survived)
    finally:
        kafka.delete_destination(topic)
        kafka.close()


def dlq_ingest(kills: int, seed: int, tmp_path: Path, n: int = 300) -> Counts:
    """`manage.py dlq_ingest` on a RabbitMQ DLQ of its own (the machine's broker, the drill's queue)."""
    from brokers.base import OutgoingMessage
    from console import brokers
    from dlq.models import DeadLetter, DeadLetterSource

    rng = random.Random(seed)
    rabbit = brokers.get("rabbitmq")
    queue = f"drill-crash-{uuid.uuid4().hex[:8]}-dlq"
    rabbit.ensure_destination(queue)
    try:
        batch = [OutgoingMessage(queue, json.dumps({"n": i}).encode(), headers={"n": str(i)}) for i in range(n)]
        rabbit.publish_batch(batch)
        source = DeadLetterSource.objects.create(broker="rabbitmq", destination=queue, origin="drill")
        stored = DeadLetter.objects.filter(source=source)
        log = tmp_path / f"dlq-{queue}.log"
        argv = ("dlq_ingest", "--no-discovery", "--source", str(source.pk), "--batch", "10")
        survived = _kill_loop(rng, kills, lambda: procs.manage(*argv, log=log), stored.count, n, log)
        final = procs.manage(*argv, log=log)
        try:
            deadline = time.monotonic() + 120
            while (stored.count() < n or rabbit.queue_depth(queue).ready) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a redelivery still in flight would land now
            final.send_signal(signal.SIGTERM)
            final.wait(30)
        finally:
            procs.kill(final)
        numbers = [int(dl.headers["n"]) for dl in stored]
        # A message acked by nobody (killed between commit and ack) comes back redelivered: the same message id
        # (source, broker id) is stored once; one that came back with a new id would be a duplicate row here.
        return Counts(
            inputs=n, lost=n - len(set(numbers)), duplicated=len(numbers) - len(set(numbers)), restarts=survived
        )
    finally:
        rabbit.delete_destination(queue)


def _celery_worker(log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "console",
            "worker",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "-c",
            "1",
            "-l",
            "INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=procs.env(),
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


RATE = 250  # messages/s for the replay the Celery drill kills: slow enough that kills land mid-operation


def celery_replay(world, kills: int, seed: int, tmp_path: Path, n: int = 400) -> Counts:
    """A dead-letter replay operation run by a Celery worker that is SIGKILLed; the beat's stale-operation job (run
    here by hand once the dead worker's heartbeat is made old) hands it to the next worker."""
    from django.utils import timezone

    from console import brokers, operations
    from console.models import Operation
    from console.tasks import run_operation
    from dlq import actions
    from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
    from dlq.operations import validate

    rng = random.Random(seed)
    kafka = brokers.get("kafka")
    origin = f"drill-crash-replay-{uuid.uuid4().hex[:8]}"
    kafka.ensure_destination(origin)
    try:
        source = DeadLetterSource.objects.create(broker="kafka", destination=origin + ".DLQ")
        now = timezone.now()
        DeadLetter.objects.bulk_create(
            DeadLetter(
                source=source,
                origin=origin,
                message_id=f"0:{i}",
                body=json.dumps({"n": i}).encode(),
                body_size=10,
                first_failure_at=now,
                last_failure_at=now,
                fingerprint="crash",
            )
            for i in range(n)
        )
        ids = list(DeadLetter.objects.filter(source=source).values_list("id", flat=True))
        key = f"crash-{uuid.uuid4().hex[:8]}"
        op, _ = actions.do_replay_dead_letters(world.operator, validate({"ids": ids, "rate": RATE}), "crash drill", key)
        records = ReplayRecord.objects.filter(dead_letter__source=source)
        log = tmp_path / "celery.log"

        def start():
            # What the beat's requeue-stale-operations job does once a dead worker's heartbeat is old.
            Operation.objects.filter(pk=op.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=5))
            for stale in operations.stale():
                run_operation.delay(str(stale))
            return _celery_worker(log)

        survived = _kill_loop(rng, kills, start, records.count, n, log)
        final = start()
        try:
            deadline = time.monotonic() + 180
            while Operation.objects.get(pk=op.pk).status != "succeeded" and time.monotonic() < deadline:
                assert final.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
        finally:
            os.killpg(final.pid, signal.SIGTERM)
            try:
                final.wait(20)
            except subprocess.TimeoutExpired:
                procs.kill(final)
        sent = kafka.read(origin, max_messages=3 * n, timeout=20)
        replay_of = [int(m.headers["x-switchyard-replay-of"]) for m in sent]
        # Every copy names the dead letter and the operation it came from: a duplicate is a repeat of the one send
        # the kill interrupted (sent, not yet recorded), which its provenance headers identify.
        unmarked = sum(m.headers.get("x-switchyard-operation") != str(op.pk).encode() for m in sent)
        # The at-least-once window of one kill: the batches handed to Kafka and not yet recorded — two in flight
        # (dlq.operations.Delivery pipelines the next), each at most a second of the rate limit (Sizer) — resent on
        # resume. More repeats than that would be outside the window.
        repeats = len(replay_of) - len(set(replay_of))
        unmarked += max(0, repeats - kills * 2 * RATE)
        return Counts(
            inputs=n,
            lost=len(set(ids) - set(replay_of)),
            duplicated=repeats,
            restarts=survived,
            unmarked=unmarked,
        )
    finally:
        kafka.delete_destination(origin)


def _sampler_child() -> None:
    from monitoring.sampler import sample_all

    while True:
        sample_all()


def sampler(kills: int, seed: int) -> Counts:
    """The sampler (a beat task in the Celery worker) killed mid-pass: a process forked from this one runs passes back
    to back and is SIGKILLed at a random instant; the next pass must then complete and see the drill's consumer group
    with its true lag. A pass that fails, or a group that reads wrong afterwards, counts as lost."""
    import multiprocessing

    from django.db import connection

    from console import brokers
    from monitoring.models import ConsumerTarget
    from monitoring.sampler import sample_all

    rng = random.Random(seed)
    kafka = brokers.get("kafka")
    topic, group = f"drill-crash-lag-{uuid.uuid4().hex[:8]}", f"drill-crash-group-{uuid.uuid4().hex[:8]}"
    kafka.ensure_destination(topic)
    try:
        from brokers.base import OutgoingMessage

        kafka.publish_batch([OutgoingMessage(topic, b"x") for _ in range(10)])
        with kafka.subscribe(topic, group) as subscription:
            read: list = []
            deadline = time.monotonic() + 60
            while len(read) < 3 and time.monotonic() < deadline:
                read += subscription.poll(3 - len(read), 1.0)
            subscription.ack(read[:3])
        started = time.perf_counter()
        sample_all()
        pass_seconds = time.perf_counter() - started
        counts = Counts()
        for _ in range(kills):
            connection.close()  # the child must not share this process's database socket
            child = multiprocessing.get_context("fork").Process(target=_sampler_child, daemon=True)
            child.start()
            time.sleep(rng.uniform(0.2, 0.2 + 2 * pass_seconds))
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            counts.inputs += 1
            result = sample_all()
            target = ConsumerTarget.objects.filter(broker="kafka", name=group).first()
            ok = target is not None and target.lag == 7 and "kafka:default" not in result["errors"]
            counts.restarts += ok
            counts.lost += not ok
        return counts
    finally:
        kafka.delete_destination(topic)
