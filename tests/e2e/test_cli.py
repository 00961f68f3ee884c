"""End-to-end tests of the ``jobq`` CLI: run as a subprocess, check what a user sees.

Each test looks at stdout, stderr and the exit code, and at the database afterwards (read
with the standard ``sqlite3`` module, not through jobq).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

from tests.support.helpers import SAMPLE_APP, assert_refused, query, wait_for

ADD = "tests.support.sample_tasks.add"
ECHO = "tests.support.sample_tasks.echo"
FAIL = "tests.support.sample_tasks.fail"
RECORD = "tests.support.sample_tasks.record"

JOB_KEYS = {
    "id",
    "task",
    "queue",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "args",
    "kwargs",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "worker",
}
STATUSES = {"deferred", "queued", "scheduled", "running", "succeeded", "failed", "cancelled"}
COMMANDS = ("submit", "worker", "status", "list", "retry", "cancel", "purge", "demo")


def job_row(database: str, job_id: int) -> dict[str, Any]:
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        connection.close()
    assert row is not None, f"job {job_id} is not in the database"
    return dict(row)


def assert_ok(result: Any) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr


def submit(jobq: Any, *args: str) -> int:
    """``jobq submit ARGS``: stdout must be the id alone on one line."""
    result = jobq("submit", *args)
    assert_ok(result)
    assert re.fullmatch(r"\d+\n", result.stdout), repr(result.stdout)
    return int(result.stdout)


# -- submit ----------------------------------------------------------------------------------


def test_submit_prints_only_the_id_and_stores_the_job(jobq: Any, database: str) -> None:
    first = submit(jobq, ADD, "1", "2")
    second = submit(jobq, ADD, "3", "4")
    assert second == first + 1
    row = job_row(database, first)
    assert row["task"] == ADD
    assert row["status"] == "queued"
    assert json.loads(row["args"]) == [1, 2]
    assert json.loads(row["kwargs"]) == {}
    assert row["queue"] == "default" and row["priority"] == 0 and row["max_attempts"] == 3


def test_submit_json_prints_the_job_object(jobq: Any, database: str) -> None:
    result = jobq("submit", ECHO, "5", "--json")
    assert_ok(result)
    job = json.loads(result.stdout)
    assert set(job) >= JOB_KEYS
    assert job["task"] == ECHO and job["status"] == "queued" and job["args"] == [5]
    assert job["attempts"] == 0 and job["result"] is None and job["error"] is None
    assert job["started_at"] is None and job["finished_at"] is None and job["worker"] is None
    assert query(database, "SELECT id, status FROM jobs") == [(job["id"], "queued")]


def test_submit_parses_each_arg_as_json_else_text(jobq: Any, database: str) -> None:
    job_id = submit(
        jobq, ECHO, "1", '"x"', "hello", "-3", "[1,2]", "2.5", "true", "null", '{"a": 1}', ""
    )
    parsed = [1, "x", "hello", -3, [1, 2], 2.5, True, None, {"a": 1}, ""]
    assert json.loads(job_row(database, job_id)["args"]) == parsed
    result = jobq("status", str(job_id), "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["args"] == parsed


def test_submit_kwargs(jobq: Any, database: str) -> None:
    job_id = submit(jobq, ADD, "--kwargs", '{"x": 1, "y": {"nested": [true, null]}}')
    row = job_row(database, job_id)
    assert json.loads(row["args"]) == []
    assert json.loads(row["kwargs"]) == {"x": 1, "y": {"nested": [True, None]}}


def test_submit_options_are_stored_as_given(jobq: Any, database: str) -> None:
    result = jobq(
        "submit",
        ECHO,
        "--queue",
        "emails",
        "--priority",
        "-7",
        "--delay",
        "3600",
        "--max-attempts",
        "9",
        "--timeout",
        "2.5",
        "--json",
    )
    assert_ok(result)
    job = json.loads(result.stdout)
    assert job["queue"] == "emails" and job["priority"] == -7
    assert job["status"] == "scheduled"
    assert job["max_attempts"] == 9 and job["timeout"] == 2.5
    row = job_row(database, job["id"])
    assert (row["queue"], row["priority"], row["status"], row["max_attempts"], row["timeout"]) == (
        "emails",
        -7,
        "scheduled",
        9,
        2.5,
    )
    assert 3590 < row["run_at"] - row["created_at"] < 3610
    immediate = submit(jobq, ECHO, "--priority", "5")
    assert job_row(database, immediate)["status"] == "queued"
    assert job_row(database, immediate)["priority"] == 5


def test_submit_wait_prints_the_result(jobq: Any, start_worker: Any, database: str) -> None:
    start_worker("--procs", "1", "--threads", "2")
    result = jobq("submit", ADD, "2", "40", "--wait", timeout=30)
    assert_ok(result)
    assert json.loads(result.stdout) == 42
    (row,) = query(database, "SELECT status, result, attempts FROM jobs")
    assert row == ("succeeded", "42", 1)


def test_submit_wait_on_a_failing_job_exits_non_zero(
    jobq: Any, start_worker: Any, database: str
) -> None:
    start_worker("--procs", "1", "--threads", "2")
    result = jobq("submit", FAIL, "kaput", "--max-attempts", "1", "--wait", timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "ValueError" in result.stderr and "kaput" in result.stderr
    assert result.stdout.strip() == ""
    (row,) = query(database, "SELECT status, attempts FROM jobs")
    assert row == ("failed", 1)


# -- status and list -------------------------------------------------------------------------


def test_status_summary_json(jobq: Any, database: str) -> None:
    submit(jobq, ECHO, "1")
    submit(jobq, ECHO, "2", "--queue", "other")
    submit(jobq, ECHO, "3", "--delay", "600")
    cancelled = submit(jobq, ECHO, "4")
    assert_ok(jobq("cancel", str(cancelled)))
    result = jobq("status", "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    assert set(summary) >= {"counts", "queues", "workers"}
    assert set(summary["counts"]) == STATUSES
    assert summary["counts"] == {
        "deferred": 0,
        "queued": 2,
        "scheduled": 1,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert set(summary["queues"]) == {"default", "other"}
    assert summary["queues"]["other"]["queued"] == 1
    assert summary["queues"]["default"]["scheduled"] == 1
    assert summary["workers"] == []
    human = jobq("status")
    assert_ok(human)
    assert "queued" in human.stdout and "other" in human.stdout
    assert "no live workers" in human.stdout


def test_status_lists_a_running_worker(jobq: Any, start_worker: Any) -> None:
    submit(jobq, ECHO, "warm up")  # creates the database before the worker starts
    worker = start_worker("--procs", "1", "--threads", "2")

    def workers() -> list[dict[str, Any]]:
        result = jobq("status", "--json")
        assert_ok(result)
        return json.loads(result.stdout)["workers"]

    listed = wait_for(workers, timeout=15, interval=0.1)
    assert isinstance(listed, list)
    entry = listed[0]
    assert {"id", "pid", "host", "started_at", "heartbeat_at"} <= set(entry)
    assert entry["pid"] in worker.children() or entry["pid"] == worker.pid
    assert entry["host"] == os.uname().nodename
    human = jobq("status")
    assert_ok(human)
    assert str(entry["pid"]) in human.stdout


def test_status_of_one_job(jobq: Any, start_worker: Any) -> None:
    start_worker("--procs", "1", "--threads", "2")
    done = jobq("submit", ECHO, '{"answer": 42}', "--wait", timeout=30)
    assert_ok(done)
    job_id = int(json.loads(jobq("list", "--json").stdout)[0]["id"])
    human = jobq("status", str(job_id), COLUMNS="250")
    assert_ok(human)
    assert "succeeded" in human.stdout
    assert '{"answer": 42}' in human.stdout
    as_json = jobq("status", str(job_id), "--json")
    assert_ok(as_json)
    job = json.loads(as_json.stdout)
    assert set(job) >= JOB_KEYS
    assert job["status"] == "succeeded" and job["result"] == {"answer": 42}
    assert job["attempts"] == 1 and job["finished_at"] >= job["started_at"] >= job["created_at"]
    assert job["worker"]


def test_list_filters_and_limit(jobq: Any) -> None:
    ids = [submit(jobq, ECHO, str(n)) for n in range(3)]
    mail = submit(jobq, RECORD, "m", "--queue", "mail")
    later = submit(jobq, ECHO, "late", "--delay", "600")

    def listed(*args: str) -> list[int]:
        result = jobq("list", "--json", *args)
        assert_ok(result)
        return [job["id"] for job in json.loads(result.stdout)]

    assert listed() == [later, mail, *reversed(ids)]  # newest first
    assert listed("--limit", "2") == [later, mail]
    assert listed("--queue", "mail") == [mail]
    assert listed("--task", RECORD) == [mail]
    assert listed("--status", "scheduled") == [later]
    assert listed("--status", "queued", "--queue", "default", "--limit", "1") == [ids[-1]]
    assert listed("--status", "failed") == []
    result = jobq("list", "--json", "--limit", "1")
    assert set(json.loads(result.stdout)[0]) >= JOB_KEYS
    human = jobq("list", "--queue", "mail", COLUMNS="250")
    assert_ok(human)
    assert str(mail) in human.stdout and "mail" in human.stdout and RECORD in human.stdout
    assert "late" not in human.stdout


# -- retry, cancel, purge --------------------------------------------------------------------


def run_burst(jobq: Any) -> None:
    """Run every runnable job with a ``--burst`` worker in this process, then return."""
    result = jobq(
        "worker", "--app", SAMPLE_APP, "--burst", "--procs", "0", "--threads", "2", timeout=30
    )
    assert_ok(result)


def test_retry_a_failed_job(jobq: Any, database: str) -> None:
    job_id = submit(jobq, FAIL, "--max-attempts", "1")
    run_burst(jobq)
    row = job_row(database, job_id)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    result = jobq("retry", str(job_id))
    assert_ok(result)
    assert str(job_id) in result.stdout
    row = job_row(database, job_id)
    assert (row["status"], row["attempts"], row["finished_at"], row["worker_id"]) == (
        "queued",
        0,
        None,
        None,
    )
    listed = json.loads(jobq("list", "--status", "queued", "--json").stdout)
    assert [job["id"] for job in listed] == [job_id]
    run_burst(jobq)  # it really runs again, and fails again
    row = job_row(database, job_id)
    assert (row["status"], row["attempts"]) == ("failed", 1)


def test_retry_resets_a_failed_job_to_queued(jobq: Any, database: str) -> None:
    job_id = submit(jobq, FAIL)
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "UPDATE jobs SET status = 'failed', attempts = 3, finished_at = 1, error = ?"
            " WHERE id = ?",
            (json.dumps({"type": "ValueError", "message": "boom"}), job_id),
        )
    connection.close()
    result = jobq("retry", str(job_id))
    assert_ok(result)
    row = job_row(database, job_id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("queued", 0, None)


def test_retry_of_a_succeeded_job_is_refused(jobq: Any, start_worker: Any, database: str) -> None:
    start_worker("--procs", "1", "--threads", "2")
    assert_ok(jobq("submit", ADD, "1", "1", "--wait", timeout=30))
    (job_id,) = [row[0] for row in query(database, "SELECT id FROM jobs")]
    result = jobq("retry", str(job_id))
    assert_refused(result, "succeeded", str(job_id))
    assert job_row(database, job_id)["status"] == "succeeded"


def test_cancel_queued_and_scheduled_jobs(jobq: Any, database: str) -> None:
    queued = submit(jobq, ECHO, "q")
    scheduled = submit(jobq, ECHO, "s", "--delay", "600")
    for job_id in (queued, scheduled):
        result = jobq("cancel", str(job_id))
        assert_ok(result)
        assert "cancelled" in result.stdout
        row = job_row(database, job_id)
        assert row["status"] == "cancelled" and row["finished_at"] is not None
    again = jobq("cancel", str(queued))
    assert_refused(again, "cancelled")
    # A cancelled job can be retried: it is queued again.
    assert_ok(jobq("retry", str(scheduled)))
    assert job_row(database, scheduled)["status"] == "queued"


def test_cancel_of_a_finished_job_is_refused(jobq: Any, start_worker: Any, database: str) -> None:
    start_worker("--procs", "1", "--threads", "2")
    assert_ok(jobq("submit", ECHO, "done", "--wait", timeout=30))
    (job_id,) = [row[0] for row in query(database, "SELECT id FROM jobs")]
    result = jobq("cancel", str(job_id))
    assert_refused(result, "succeeded")
    assert job_row(database, job_id)["status"] == "succeeded"


def test_purge_removes_only_old_finished_jobs_of_the_given_statuses(
    jobq: Any, database: str
) -> None:
    ids = {
        name: submit(jobq, ECHO, name)
        for name in ("ok-old", "ok-new", "failed-old", "cancelled-old", "queued")
    }
    connection = sqlite3.connect(database)
    with connection:
        for name, status, finished in (
            ("ok-old", "succeeded", 1000.0),
            ("failed-old", "failed", 1000.0),
            ("cancelled-old", "cancelled", 1000.0),
        ):
            connection.execute(
                "UPDATE jobs SET status = ?, finished_at = ? WHERE id = ?",
                (status, finished, ids[name]),
            )
        connection.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = strftime('%s','now') + 3600"
            " WHERE id = ?",
            (ids["ok-new"],),
        )
    connection.close()

    result = jobq("purge", "--status", "succeeded", "--older-than", "7d")
    assert_ok(result)
    assert "purged 1 job" in result.stdout
    remaining = {row[0] for row in query(database, "SELECT id FROM jobs")}
    assert ids["ok-old"] not in remaining and ids["ok-new"] in remaining

    result = jobq("purge", "--status", "failed", "--status", "cancelled", "--older-than", "0s")
    assert_ok(result)
    assert "purged 2 jobs" in result.stdout
    remaining = {row[0] for row in query(database, "SELECT id FROM jobs")}
    assert remaining == {ids["ok-new"], ids["queued"]}

    result = jobq("purge", "--older-than", "0s")  # default --status succeeded
    assert_ok(result)
    assert "purged 0 jobs" in result.stdout  # ok-new finished "in the future": not older
    assert {row[0] for row in query(database, "SELECT id FROM jobs")} == remaining


def test_purge_with_real_finished_jobs(jobq: Any, start_worker: Any, database: str) -> None:
    start_worker("--procs", "1", "--threads", "2")
    assert_ok(jobq("submit", ECHO, "a", "--wait", timeout=30))
    waiting = submit(jobq, ECHO, "b", "--delay", "600")
    result = jobq("purge", "--status", "succeeded", "--older-than", "0s")
    assert_ok(result)
    assert "purged 1 job" in result.stdout
    assert query(database, "SELECT id, status FROM jobs") == [(waiting, "scheduled")]


# -- help, version, the database file, the demo ----------------------------------------------


def test_help_and_version(jobq: Any) -> None:
    result = jobq("--help")
    assert_ok(result)
    for command in COMMANDS:
        assert command in result.stdout
    for command in COMMANDS:
        result = jobq(command, "--help")
        assert_ok(result)
        assert "Usage:" in result.stdout and command in result.stdout
    version = jobq("--version")
    assert_ok(version)
    import jobq as library

    assert library.__version__ in version.stdout and "jobq" in version.stdout


def test_help_does_not_create_a_database(jobq: Any, database: str, tmp_path: Path) -> None:
    assert_ok(jobq("--help"))
    assert_ok(jobq("status", "--help"))
    assert not Path(database).exists()
    assert not (tmp_path / "jobq.db-wal").exists()


def test_new_database_file_is_private(jobq: Any, database: str) -> None:
    old = os.umask(0)  # even a permissive umask must not widen it (the child inherits it)
    try:
        submit(jobq, ECHO, "secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


def test_db_option_and_url(jobq: Any, tmp_path: Path, database: str) -> None:
    other = tmp_path / "other.db"
    job_id = submit(jobq, "--db", f"sqlite:///{other}?synchronous=full", ECHO, "1")
    assert query(str(other), "SELECT id, task FROM jobs") == [(job_id, ECHO)]
    assert not Path(database).exists()  # JOBQ_DB was not used
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o600
    # The global --db comes before the command and also wins over JOBQ_DB.
    result = jobq("--db", str(other), "status", "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["counts"]["queued"] == 1
    assert not Path(database).exists()
    result = jobq("--db", str(other), "list", "--json")
    assert [job["id"] for job in json.loads(result.stdout)] == [job_id]
    # A relative URL is relative to the current directory; cwd is tmp_path.
    result = jobq("--db", "sqlite:///rel.db", "submit", ECHO, "2")
    assert_ok(result)
    assert (tmp_path / "rel.db").exists()
    # Default ./jobq.db when neither --db nor JOBQ_DB is given.
    result = jobq("submit", ECHO, "3", JOBQ_DB="")
    assert_ok(result)
    assert Path(database).exists()  # database is tmp_path/jobq.db, the cwd's jobq.db


def test_demo(jobq: Any, database: str) -> None:
    result = jobq("demo", "--seconds", "0.05", "--jobs", "4", "--procs", "2", timeout=60)
    assert_ok(result)
    completed = re.findall(r"Complete task (\d+)", result.stdout)
    assert sorted(map(int, completed)) == [0, 1, 2, 3]
    assert "queue" in result.stdout and "succeeded" in result.stdout  # the status table
    assert query(database, "SELECT status, COUNT(*) FROM jobs GROUP BY status") == [
        ("succeeded", 4)
    ]


def test_jobq_db_does_not_override_an_app_that_names_its_database(
    jobq: Any, tmp_path: Path, database: str
) -> None:
    named = tmp_path / "named.db"
    (tmp_path / "named_app.py").write_text(
        f"from jobq import JobQ\napp = JobQ({str(named)!r})\n\n"
        "@app.task(name='named.echo')\ndef echo(value: int) -> int:\n    return value\n"
    )
    result = jobq("submit", "--app", "named_app:app", "named.echo", "5")
    assert result.returncode == 0, result.stderr
    assert "using the app's database" in result.stderr
    assert query(str(named), "SELECT task FROM jobs") == [("named.echo",)]
    assert not Path(database).exists()  # JOBQ_DB was not used
    # An explicit --db still wins over the app's own database.
    other = tmp_path / "chosen.db"
    result = jobq("--db", str(other), "submit", "--app", "named_app:app", "named.echo", "6")
    assert result.returncode == 0, result.stderr
    assert query(str(other), "SELECT task FROM jobs") == [("named.echo",)]


def test_read_commands_use_the_database_the_app_names(tmp_path: Path, jobq: Any) -> None:
    """An app with ``JobQ("tasks.db")`` in code: status, list and logs find that database
    through --app, as submit and worker do (before: "no database at jobq.db")."""
    (tmp_path / "named.py").write_text(
        "from jobq import JobQ\napp = JobQ('tasks.db')\n\n@app.task\ndef hello(name: str) -> str:\n"
        "    return 'hello ' + name\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}", "JOBQ_DB": ""}
    submitted = jobq("submit", "--app", "named:app", "named.hello", "world", **env)
    assert submitted.returncode == 0, submitted.stderr
    assert (tmp_path / "tasks.db").exists() and not (tmp_path / "jobq.db").exists()
    job_id = submitted.stdout.strip()
    for command in (("status",), ("status", job_id), ("list",)):
        shown = jobq(*command, "--app", "named:app", **env)
        assert shown.returncode == 0, shown.stderr
    logs = jobq("logs", job_id, "--app", "named:app", **env)
    assert logs.returncode == 2 and logs.stdout == ""
    assert "not a shell command" in logs.stderr and "named.hello" in logs.stderr
