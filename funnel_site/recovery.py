"""Stranded work recovers by itself: a row left `running` by a worker that died is handed back.

Any long job that records its runner (`host:pid` of the process doing it) and a heartbeat on its
row plugs in with one `recoverable_register(...)` call in its app's `ready()`:

    recoverable_register(Recoverable(
        name="training", model="predictions.ModelVersion", running={"status": "running"},
        recover="predictions.services.model_version_recover"))

`recover(pk=, runner=, reason=)` gets each stranded row and must act only if the row still has
that runner (re-queue it, or fail it after too many attempts) and return whether it did.

A runner is dead when (checked in this order):
1. its process is gone and it ran on this host (seen at once by a worker starting there);
2. its row's heartbeat is older than 3 intervals and no worker of its host is alive (host
   heartbeats of funnel_site/workers.py: a whole machine or worker gone, seen from elsewhere);
3. its row's heartbeat is older than FUNNEL_RUNNER_STALE_SECONDS (default 60): anything else.

`stranded_work_recover()` runs when a worker starts and every 30 s from beat
(`funnel_site.recover_stranded_work`, funnel_site/schedules.py), so a row stranded by a SIGKILL is
back in the queue within a minute or two whether or not the dead worker comes back.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

log = structlog.get_logger(__name__)
RECENT_SECONDS = 15  # three 5 s heartbeats of a training


@dataclass(frozen=True)
class Recoverable:
    """A kind of job whose rows carry a runner and a heartbeat."""

    name: str
    model: str  # "app_label.ModelName"
    running: dict = field(default_factory=lambda: {"status": "running"})
    recover: str = ""  # dotted path of recover(*, pk, runner, reason) -> bool
    runner_field: str = "runner"
    heartbeat_field: str = "heartbeat_at"
    # rule 3's silence for this kind (None: FUNNEL_RUNNER_STALE_SECONDS); longer for a job that may
    # wait in a queue between its parts with nobody beating for it (a scoring run's shards)
    stale_seconds: int | None = None


_REGISTRY: dict[str, Recoverable] = {}


def recoverable_register(kind: Recoverable) -> None:
    """Register a kind of job (idempotent: an app's ready() may run twice)."""
    _REGISTRY[kind.name] = kind


def recoverables() -> list[Recoverable]:
    """The registered kinds."""
    return list(_REGISTRY.values())


def runner_id() -> str:
    """host:pid of this process (what a job records as its runner)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (killed, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except OSError:
        return False


def runner_dead_reason(*, runner: str, heartbeat_at: datetime | None, now: datetime,
                       stale_seconds: int | None = None) -> str | None:
    """Why the job's runner is dead, or None while it may be alive."""
    from funnel_site.workers import host_has_live_worker

    host, _, pid = (runner or "").rpartition(":")
    silent = (now - heartbeat_at).total_seconds() if heartbeat_at else float("inf")
    if host == socket.gethostname() and pid.isdigit() and _process_gone(int(pid)):
        return f"its worker process {runner} is gone"
    if host and silent > RECENT_SECONDS and host_has_live_worker(host) is False:
        return f"no worker of host {host} is alive (silent for {silent:.0f}s)"
    stale = stale_seconds or settings.FUNNEL_RUNNER_STALE_SECONDS
    if silent > stale:
        return f"no heartbeat from {runner or 'its worker'} for over {stale}s"
    return None


def stranded_work_recover() -> dict[str, int]:
    """Hand back every stranded row of every registered kind; returns how many per kind."""
    now = timezone.now()
    done: dict[str, int] = {}
    for kind in recoverables():
        model = apps.get_model(kind.model)
        rows = model.objects.filter(**kind.running).values_list("pk", kind.runner_field, kind.heartbeat_field)
        recover = import_string(kind.recover)
        count = 0
        for pk, runner, heartbeat_at in rows:
            reason = runner_dead_reason(runner=runner, heartbeat_at=heartbeat_at, now=now,
                                        stale_seconds=kind.stale_seconds)
            if reason and recover(pk=pk, runner=runner, reason=reason):
                log.warning("stranded_work_recovered", kind=kind.name, pk=pk, runner=runner, reason=reason)
                count += 1
        done[kind.name] = count
    return done



class RowHeartbeat:
    """Context manager: while a job's part runs in this process, its row records this process as runner
    and a fresh heartbeat every ``every`` seconds (a thread with its own connection), as long as the
    row matches ``alive`` (e.g. still running). ``lost`` is set when it no longer does.

    ``sticky``: the runner is written only while the row has none (a job of several parts in several
    processes keeps the process that started it; every part still refreshes the heartbeat)."""

    def __init__(self, model, pk: int, *, alive: dict, every: float = 5.0, runner_field: str = "runner",
                 heartbeat_field: str = "heartbeat_at", sticky: bool = False) -> None:
        self.model, self.pk, self.alive, self.every, self.sticky = model, pk, alive, every, sticky
        self.fields = (runner_field, heartbeat_field)
        self.runner = runner_id()
        self.lost = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)

    def beat(self) -> bool:
        runner_field, heartbeat_field = self.fields
        rows = self.model.objects.filter(pk=self.pk, **self.alive)
        if self.sticky:
            rows.filter(**{runner_field: ""}).update(**{runner_field: self.runner})
            updated = rows.update(**{heartbeat_field: timezone.now()})
        else:
            updated = rows.update(**{runner_field: self.runner, heartbeat_field: timezone.now()})
        if not updated:
            self.lost.set()
        return bool(updated)

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._halt.wait(self.every):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 - a missed beat is not a failed job
                    log.warning("row_heartbeat_failed", model=self.model.__name__, pk=self.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> RowHeartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join(timeout=30)
