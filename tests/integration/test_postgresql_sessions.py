"""PostgreSQL sessions: one per thread that uses the store, closed when the thread ends."""

from __future__ import annotations

import gc
import threading

from jobq.models import NewJob
from jobq.store import open_store
from tests.support import postgres

pytestmark = list(postgres.MARKS)


def sessions(name: str) -> int:
    import psycopg

    with psycopg.connect(postgres.SERVER) as connection:
        return int(
            connection.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()[0]
        )


def test_threads_that_end_leave_no_session_behind() -> None:
    """A web app submitting from a thread per request must not pile up sessions."""
    with postgres.fresh_database() as url:
        store = open_store(f"{url}&application_name=jobq-sessions-test")
        try:
            for _ in range(20):
                thread = threading.Thread(target=lambda: store.enqueue([NewJob("t", "[]", "{}")]))
                thread.start()
                thread.join(timeout=10)
            gc.collect()
            assert sessions("jobq-sessions-test") == 1  # this thread's, from opening
            assert store.counts()["counts"]["queued"] == 20
        finally:
            store.close()
        assert sessions("jobq-sessions-test") == 0


def test_a_store_dropped_without_close_leaves_no_session() -> None:
    with postgres.fresh_database() as url:
        for _ in range(5):
            store = open_store(f"{url}&application_name=jobq-dropped-test")
            store.enqueue([NewJob("t", "[]", "{}")])
            del store
        gc.collect()
        assert sessions("jobq-dropped-test") == 0


def test_options_in_the_url_reach_the_server_as_written() -> None:
    """A space in a URL option is %20, and must stay so: libpq reads + as a plus sign."""
    with postgres.fresh_database() as url:
        store = open_store(f"{url}&options=-c%20statement_timeout%3D1234")
        try:
            assert store._read("SHOW statement_timeout")[0][0] == "1234ms"  # noqa: SLF001
        finally:
            store.close()
