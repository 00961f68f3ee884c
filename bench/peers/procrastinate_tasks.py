"""Procrastinate app and tasks for bench/compare.py (``procrastinate --app
procrastinate_tasks.app worker``, one process per worker).

``BENCH_PROCRASTINATE_DSN`` is the connection string of the database the harness made for
Procrastinate alone (``bench_procrastinate`` on the local server, created and dropped by the
harness). The connector is ``PsycopgConnector`` with its default pool; the tasks are plain
synchronous functions, registered under the same names as the other peers' tasks.
"""

from __future__ import annotations

import os

import peer_common
from procrastinate import App, PsycopgConnector

DSN = os.environ.get(
    "BENCH_PROCRASTINATE_DSN", "postgresql://postgres@127.0.0.1:5432/bench_procrastinate"
)
app = App(connector=PsycopgConnector(conninfo=DSN))


@app.task(name="bench.noop")
def noop(number):  # type: ignore[no-untyped-def]
    peer_common.mark()


@app.task(name="bench.stamp")
def stamp(index):  # type: ignore[no-untyped-def]
    peer_common.stamp(index)
