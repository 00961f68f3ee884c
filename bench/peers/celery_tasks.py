"""Celery app and tasks for bench/compare.py (``celery -A celery_tasks worker -P prefork -c 5``).

Broker: Redis at ``BENCH_REDIS_URL`` (the harness uses a dedicated db, 15, flushed before and
after). No result backend (``task_ignore_result``): like the other peers' no-op jobs, nothing
is stored per result. Other settings are Celery's defaults (acks on receipt, prefetch 4).
"""

from __future__ import annotations

import os

import peer_common
from celery import Celery

app = Celery("celery_tasks", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(number):  # type: ignore[no-untyped-def]
    peer_common.mark()


@app.task(name="bench.stamp")
def stamp(index):  # type: ignore[no-untyped-def]
    peer_common.stamp(index)
