"""End-to-end tests of the ``jobq`` CLI on bad input.

Every mistake a user can make must end with a non-zero exit, one clear line on stderr that
names the problem, no traceback, and nothing written to the database.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobq import JobQ
from jobq.errors import ConfigurationError
from jobq.worker.settings import WorkerSettings
from tests.support import postgres
from tests.support.helpers import (
    FINISHED,
    JOBQ,
    SAMPLE_APP,
    assert_refused,
    cli_status,
    wait_for,
)

ECHO = "tests.support.sample_tasks.echo"
ADD = "tests.support.sample_tasks.add"


def count_jobs(database: str | Path) -> int:
    """Jobs in the database; -1 when there is no database (or no jobs table) at all."""
    if str(database).startswith("postgresql://"):
        return postgres.count_jobs(str(database))
    if not Path(database).exists():
        return -1
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        connection.close()


@pytest.fixture
def seeded(jobq: Any, database: str) -> int:
    """A real jobq database holding one job; returns the job count (1)."""
    result = jobq("submit", ECHO, "seed")
    assert result.returncode == 0, result.stderr
    assert count_jobs(database) == 1
    return 1


def refused_submit(
    jobq: Any, database: str, *args: str, words: tuple[str, ...] = (), **env: str
) -> str:
    before = count_jobs(database)
    line = assert_refused(jobq("submit", *args, **env), *words)
    assert count_jobs(database) == before, "a refused submit wrote to the database"
    return line


# -- arguments -------------------------------------------------------------------------------


def test_nan_in_kwargs(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, ECHO, "--kwargs", '{"x": NaN}', words=("NaN",))


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN", "[1, NaN]"])
def test_non_finite_args(jobq: Any, database: str, seeded: int, constant: str) -> None:
    word = "Infinity" if "Infinity" in constant else "NaN"
    refused_submit(jobq, database, ECHO, constant, words=(word,))


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "3", "null"])
def test_kwargs_not_an_object(jobq: Any, database: str, seeded: int, text: str) -> None:
    refused_submit(jobq, database, ECHO, "--kwargs", text, words=("--kwargs", "object"))


@pytest.mark.parametrize("text", ["{bad", "{'x': 1}", "", '{"x": }'])
def test_kwargs_invalid_json(jobq: Any, database: str, seeded: int, text: str) -> None:
    line = refused_submit(jobq, database, ECHO, "--kwargs", text, words=("--kwargs",))
    assert "json" in line.lower() or "object" in line.lower()


def test_payload_over_one_mib(jobq: Any, database: str, seeded: int) -> None:
    # Linux caps one command-line argument at 128 KiB: eleven 100 000-character args.
    chunks = ["a" * 100_000] * 11
    line = refused_submit(jobq, database, ECHO, *chunks, words=("bytes", "limit"))
    assert len(line) < 500  # names the problem, does not echo the payload
    chunks = ["b" * 100_000] * 11
    refused_submit(
        jobq,
        database,
        ECHO,
        "--kwargs",
        json.dumps({"k": "c" * 100_000}),
        *chunks,
        words=("limit",),
    )


def test_payload_just_under_the_limit_is_accepted(jobq: Any, database: str, seeded: int) -> None:
    result = jobq("submit", ECHO, *(["d" * 100_000] * 10))
    assert result.returncode == 0, result.stderr
    assert count_jobs(database) == seeded + 1


@pytest.mark.parametrize("depth", [65, 100, 5000, 50_000])  # 50 000: under Linux's 128 KiB
def test_absurd_nesting_in_an_arg(jobq: Any, database: str, seeded: int, depth: int) -> None:
    text = "[" * depth + "]" * depth
    line = refused_submit(jobq, database, ECHO, text, words=("nested",))
    assert len(line) < 2000


def test_absurd_nesting_in_kwargs(jobq: Any, database: str, seeded: int) -> None:
    text = '{"x": ' + "[" * 5000 + "]" * 5000 + "}"
    refused_submit(jobq, database, ECHO, "--kwargs", text, words=("--kwargs", "nested"))


def test_wrong_types_against_hints(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, "--app", SAMPLE_APP, ADD, "x", "1", words=("'x'",))
    refused_submit(jobq, database, ADD, "x", "1", words=("'x'",), JOBQ_APP=SAMPLE_APP)
    refused_submit(jobq, database, "--app", SAMPLE_APP, ADD, "1", words=("y",))  # missing y
    refused_submit(
        jobq, database, "--app", SAMPLE_APP, ADD, "1", "2", "3", words=(ADD,)
    )  # too many
    refused_submit(
        jobq, database, "--app", SAMPLE_APP, ADD, "1", "2", "--kwargs", '{"z": 2}', words=("z",)
    )
    refused_submit(jobq, database, "--app", SAMPLE_APP, ADD, "1", "[2]", words=("'y'",))
    # With the app, good arguments are validated and accepted.
    result = jobq("submit", "--app", SAMPLE_APP, ADD, "1", "2")
    assert result.returncode == 0, result.stderr
    assert count_jobs(database) == seeded + 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--priority", "high"), ("--priority",)),
        (("--priority", "1.5"), ("--priority",)),
        (("--priority",), ("--priority",)),
        (("--max-attempts", "0"), ("--max-attempts",)),
        (("--delay", "-1"), ("--delay",)),
        (("--timeout", "0"), ("--timeout",)),
        (("--delay", "soon"), ("--delay",)),
        (("--max-attempts", "9223372036854775808"), ("--max-attempts", "range")),
        (("--max-attempts", "1000001"), ("--max-attempts", "range")),
        (("--delay", "1e12"), ("--delay", "100 years")),
        (("--delay", "5300w"), ("--delay", "100 years")),
        (("--queue", "q\udcff"), ("--queue", "UTF-8")),  # the bytes q\xff, as Python gets them
    ],
)
def test_bad_submit_options(
    jobq: Any, database: str, seeded: int, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    refused_submit(jobq, database, ECHO, "1", *args, words=words)


def test_empty_task_name(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, "", words=("task name",))
    refused_submit(jobq, database, "   ", words=("task name",))


def test_a_task_name_that_is_not_utf8_is_refused(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, "task\udcff", "1", words=("TASK", "UTF-8"))


# -- names that look dangerous ---------------------------------------------------------------


def test_dangerous_task_name_is_stored_but_never_imported(
    jobq: Any, database: str, start_worker: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    result = jobq("submit", "os.system", f"touch {marker}")
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout)
    start_worker("--procs", "1", "--threads", "2")

    def finished() -> dict[str, Any] | None:
        job = cli_status(jobq, job_id)
        return job if job["status"] in FINISHED else None

    job = wait_for(finished, timeout=15, interval=0.1)
    assert isinstance(job, dict)
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # failed at once: an unknown task does not get better
    assert job["error"]["type"] == "UnknownTaskError"
    assert "os.system" in job["error"]["message"]
    assert not marker.exists()


QUOTES = "x'; DROP TABLE jobs; --"


def test_quotes_and_semicolons_round_trip(jobq: Any, database: str, seeded: int) -> None:
    tricky_queue = 'q"; DELETE FROM jobs; --'
    result = jobq(
        "submit", QUOTES, QUOTES, "--queue", tricky_queue, "--kwargs", json.dumps({QUOTES: QUOTES})
    )
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout)
    listed = jobq("list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert len(jobs) == seeded + 1
    mine = next(job for job in jobs if job["id"] == job_id)
    assert mine["task"] == QUOTES and mine["queue"] == tricky_queue
    assert mine["args"] == [QUOTES] and mine["kwargs"] == {QUOTES: QUOTES}
    for option, value in (("--task", QUOTES), ("--queue", tricky_queue)):
        filtered = json.loads(jobq("list", "--json", option, value).stdout)
        assert [job["id"] for job in filtered] == [job_id]
    status = json.loads(jobq("status", "--json").stdout)
    assert status["queues"][tricky_queue]["queued"] == 1
    human = jobq("list", COLUMNS="250")
    assert human.returncode == 0 and "Traceback" not in human.stderr
    assert count_jobs(database) == seeded + 1  # the jobs table is intact


def test_rich_markup_in_names_is_shown_verbatim(jobq: Any, seeded: int) -> None:
    name = "[bold red]boom[/]"
    result = jobq("submit", name, "[/]", "--queue", "[b]q[/b]")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    shown = jobq("status", job_id, COLUMNS="250")
    assert shown.returncode == 0, shown.stderr
    assert name in shown.stdout and "[b]q[/b]" in shown.stdout


# -- job ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "retry", "cancel"])
def test_missing_job_id(jobq: Any, database: str, seeded: int, command: str) -> None:
    assert_refused(jobq(command, "999"), "no job", "999")
    assert count_jobs(database) == seeded


@pytest.mark.parametrize("command", ["status", "retry", "cancel"])
def test_job_id_not_a_number(jobq: Any, database: str, seeded: int, command: str) -> None:
    assert_refused(jobq(command, "abc"), "abc")
    assert count_jobs(database) == seeded


# -- --app -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_here:app", ("no_such_module_here",)),
        ("tests.support.sample_tasks:nope", ("nope",)),
        ("tests.support.sample_tasks:add", ("not a jobq.JobQ",)),
        ("tests.support.sample_tasks:os", ("not a jobq.JobQ",)),
        ("bad spec!", ("--app",)),
        (":app", ("--app",)),
        ("../etc:app", ("--app",)),
    ],
)
def test_bad_app_for_worker(
    jobq: Any, database: str, seeded: int, spec: str, words: tuple[str, ...]
) -> None:
    result = jobq("worker", "--app", spec, "--procs", "0", "--burst", timeout=30)
    assert_refused(result, *words)
    assert count_jobs(database) == seeded
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM workers").fetchone()[0] == 0


def test_a_worker_without_app_runs_commands_and_leaves_task_jobs_alone(
    jobq: Any, seeded: int
) -> None:
    command = jobq("submit", "--cmd", "true")
    assert command.returncode == 0, command.stderr
    done = jobq("worker", "--procs", "1", "--burst", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "runs shell-command jobs only" in done.stderr
    assert cli_status(jobq, int(command.stdout))["status"] == "succeeded"
    assert cli_status(jobq, seeded)["status"] == "queued"  # not taken, so not failed


def test_bad_app_for_submit_writes_nothing(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(
        jobq,
        database,
        "--app",
        "no_such_module_here:app",
        ADD,
        "1",
        "2",
        words=("no_such_module_here",),
    )


# -- --db ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("--db", "", "list"), ("list", "--db", ""), ("--db", "", "submit", ECHO, "1")],
)
def test_an_empty_db_is_refused_not_replaced_by_jobq_db(
    jobq: Any, database: str, seeded: int, args: tuple[str, ...]
) -> None:
    assert_refused(jobq(*args), "--db", "empty")
    assert count_jobs(database) == seeded


def test_a_db_path_that_is_not_utf8_is_refused(jobq: Any, tmp_path: Path) -> None:
    path = tmp_path / "jobs\udcff.db"
    assert_refused(jobq("--db", str(path), "submit", ECHO, "1"), "--db", "UTF-8")
    assert list(tmp_path.iterdir()) == []  # no file made


def test_db_is_a_directory(jobq: Any, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("list",),
        ("worker", "--app", SAMPLE_APP, "--procs", "0", "--burst"),
    ):
        assert_refused(jobq("--db", str(folder), *args), "directory")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b"hello, I am a text file\n", bytes(range(256)) * 8, b"SQLite format 2\x00xyz"],
    ids=["text", "binary", "other-header"],
)
def test_db_is_not_sqlite(jobq: Any, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("list",),
        ("purge", "--older-than", "0s"),
        ("worker", "--app", SAMPLE_APP, "--procs", "0", "--burst"),
    ):
        assert_refused(jobq("--db", str(path), *args), "not an SQLite database")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("notes")) == [
        "notes.db"
    ]  # no -wal, -shm or -journal


def test_db_is_a_foreign_sqlite_database(jobq: Any, tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('ada')")
    connection.close()
    before = path.read_bytes()
    for args in (("submit", ECHO, "1"), ("status",)):
        assert_refused(jobq("--db", str(path), *args), "not a jobq")
    with sqlite3.connect(path) as connection:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    connection.close()
    assert tables == {"customers"}
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://user@host/jobs", ("mysql",)),
        ("redis://localhost:6379/0", ("redis",)),
        ("postgresql://127.0.0.1:5432/test?schema=No", ("bad schema name",)),
        ("sqlite:///x.db?bogus=1", ("bogus",)),
        ("sqlite:///x.db?synchronous=sometimes", ("synchronous",)),
        ("sqlite:///x.db?busy_timeout=soon", ("busy_timeout",)),
        ("sqlite://host/x.db", ("sqlite",)),
        ("sqlite:///", ("no file",)),
    ],
)
def test_bad_db_url(jobq: Any, tmp_path: Path, url: str, words: tuple[str, ...]) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("worker", "--app", SAMPLE_APP, "--burst", "--procs", "0"),
    ):
        assert_refused(jobq("--db", url, *args), *words)
        assert_refused(jobq(*args, JOBQ_DB=url), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file was created


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "1"),
        ("list",),
        ("retry", "1"),
        ("cancel", "1"),
        ("purge", "--older-than", "0s"),
    ],
)
def test_missing_database_for_reading_commands(
    jobq: Any, tmp_path: Path, database: str, args: tuple[str, ...]
) -> None:
    assert_refused(jobq(*args), "no database", database)
    assert not Path(database).exists()
    typo = tmp_path / "typo.db"
    assert_refused(jobq("--db", str(typo), *args), "no database")
    assert not typo.exists()
    assert not any(p.name.startswith(("jobq.db", "typo.db")) for p in tmp_path.iterdir())


def test_missing_directory_for_a_new_database(jobq: Any, tmp_path: Path) -> None:
    path = tmp_path / "nope" / "jobq.db"
    assert_refused(jobq("--db", str(path), "submit", ECHO, "1"), "does not exist")
    assert not (tmp_path / "nope").exists()


def test_newer_schema_version(jobq: Any, database: str, seeded: int, tmp_path: Path) -> None:
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "INSERT INTO jobq_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
        )
    connection.close()
    before = Path(database).read_bytes()
    for args in (
        ("submit", ECHO, "1"),
        ("status",),
        ("list",),
        ("cancel", "1"),
        ("worker", "--app", SAMPLE_APP, "--burst", "--procs", "0"),
    ):
        line = assert_refused(jobq(*args), "newer", "999")
        assert "upgrade" in line.lower()
    assert Path(database).read_bytes() == before
    assert count_jobs(database) == seeded


# -- other options ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["7x", "-1d", "soon", "", "7 days", "1e3s"])
def test_bad_older_than(jobq: Any, database: str, seeded: int, value: str) -> None:
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE jobs SET status = 'succeeded', finished_at = 1")
    connection.close()
    assert_refused(jobq("purge", "--older-than", value), "duration")
    assert count_jobs(database) == seeded


def test_bad_purge_status(jobq: Any, database: str, seeded: int) -> None:
    assert_refused(jobq("purge", "--status", "queued", "--older-than", "0s"), "--status")
    assert count_jobs(database) == seeded


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--status", "done"),
        ("list", "--limit", "0"),
        ("list", "--limit", "many"),
        ("worker", "--app", SAMPLE_APP, "--threads", "0"),
        ("worker", "--app", SAMPLE_APP, "--procs", "-1"),
        ("worker", "--app", SAMPLE_APP, "--procs", "100000"),  # would fork until the host dies
        ("worker", "--app", SAMPLE_APP, "--threads", "100000"),
        ("demo", "--jobs", "0"),
        ("demo", "--jobs", "1000000000"),
        ("demo", "--procs", "100000"),
        ("nosuchcommand",),
        ("submit",),
        ("status", "--bogus"),
    ],
)
def test_bad_options(jobq: Any, database: str, seeded: int, args: tuple[str, ...]) -> None:
    assert_refused(jobq(*args))
    assert count_jobs(database) == seeded


# -- names that are not UTF-8 ----------------------------------------------------------------


def count_workers(database: str) -> int:
    with sqlite3.connect(database) as connection:
        count = int(connection.execute("SELECT COUNT(*) FROM workers").fetchone()[0])
    connection.close()
    return count


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("list", "--queue", "\udcff"), "--queue"),
        (("list", "--task", "\udcff"), "--task"),
        # It crash-looped: each worker process failed on its first claim, and --burst never
        # ended the supervisor.
        (("worker", "--queues", "default,\udcff", "--procs", "1", "--burst"), "--queues"),
        (("worker", "--queues", "\udcff", "--procs", "0", "--burst"), "--queues"),
    ],
)
def test_names_that_are_not_utf8_are_refused(
    jobq: Any, database: str, seeded: int, args: tuple[str, ...], option: str
) -> None:
    assert_refused(jobq(*args, timeout=30), option, "UTF-8")
    assert count_jobs(database) == seeded
    assert count_workers(database) == 0


# -- numbers SQLite or Python cannot hold ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("status", "99999999999999999999"),
        ("cancel", "99999999999999999999"),
        ("retry", "99999999999999999999"),
        ("list", "--limit", "99999999999999999999"),
    ],
)
def test_integers_beyond_64_bits_are_refused(
    jobq: Any, database: str, seeded: int, command: tuple[str, ...]
) -> None:
    assert_refused(jobq(*command), "range")


def test_a_priority_beyond_64_bits_is_refused(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, ECHO, "1", "--priority", "9" * 20, words=("range",))


def test_an_argument_with_too_many_digits_is_refused(jobq: Any, database: str, seeded: int) -> None:
    refused_submit(jobq, database, ECHO, "7" * 5000, words=("number",))


@pytest.mark.parametrize("option", ["--delay", "--timeout"])
def test_non_finite_seconds_are_refused(jobq: Any, database: str, seeded: int, option: str) -> None:
    refused_submit(jobq, database, ECHO, "1", option, "nan", words=(option.strip("-"),))


def test_a_memory_limit_too_small_for_the_threads_is_refused_before_anything_starts(
    jobq: Any, tmp_path: Path
) -> None:
    database = tmp_path / "never.db"
    needed = WorkerSettings(database="x", threads=40).least_memory
    worker = ("worker", "--app", SAMPLE_APP, "--procs", "1", "--threads", "40", "--burst")
    line = assert_refused(
        jobq("--db", str(database), *worker, "--max-memory", str(needed - 1)), "40 threads"
    )
    assert f"at least {needed} MiB" in line
    assert not database.exists()
    started = jobq("--db", str(database), *worker, "--max-memory", str(needed), timeout=60)
    assert started.returncode == 0, started.stderr


# -- times -----------------------------------------------------------------------------------

# Every option that takes seconds, with what the command needs to get as far as using it.
SECONDS_OPTIONS = [
    ("submit", ECHO, "1", "--delay"),
    ("submit", ECHO, "1", "--timeout"),
    ("status", "--watch", "--interval"),
    ("wait", "1", "--timeout"),
    ("worker", "--procs", "0", "--burst", "--lease"),
    ("worker", "--procs", "0", "--burst", "--grace"),
    ("worker", "--procs", "0", "--burst", "--cancel-grace"),
    ("purge", "--older-than"),
    ("demo", "--jobs", "1", "--procs", "1", "--seconds"),
]


@pytest.mark.parametrize("command", SECONDS_OPTIONS, ids=lambda command: " ".join(command[::2]))
@pytest.mark.parametrize(
    ("value", "word"),
    [("nan", "finite"), ("inf", "finite"), ("-1", "seconds"), ("1e12", "100 years")],
)
def test_seconds_options_refuse_what_no_clock_takes(
    jobq: Any, database: str, seeded: int, command: tuple[str, ...], value: str, word: str
) -> None:
    """nan used to be a traceback (--interval), a spinning heartbeat (--lease), a wait that
    never ended (wait --timeout); 1e12 a sleep past any deadline."""
    *args, option = command
    assert_refused(jobq(*args, option, value, timeout=30), option, word)
    assert count_jobs(database) == seeded
    assert count_workers(database) == 0


def test_seconds_options_take_durations_with_units(jobq: Any, database: str, seeded: int) -> None:
    """--delay 1h was refused ("not a valid float range") where purge --older-than 7d worked."""
    result = jobq("submit", ECHO, "1", "--delay", "1h", "--timeout", "5m")
    assert result.returncode == 0, result.stderr
    job = cli_status(jobq, int(result.stdout))
    assert job["status"] == "scheduled"
    assert job["run_at"] - job["created_at"] == pytest.approx(3600, abs=5)
    assert job["timeout"] == 300
    later = jobq("submit", ECHO, "2", "--delay", "5200w")  # 99.7 years: within the bound
    assert later.returncode == 0, later.stderr
    worker = ("worker", "--app", SAMPLE_APP, "--procs", "0", "--burst")
    done = jobq(*worker, "--lease", "1m", "--grace", "10s", "--cancel-grace", "1.5", timeout=60)
    assert done.returncode == 0, done.stderr
    waited = jobq("wait", str(seeded), "--timeout", "1m")
    assert waited.returncode == 0, waited.stderr
    assert "100 years" in jobq("submit", "--help").stdout


def test_status_shows_a_time_outside_the_calendar(jobq: Any, database: str, seeded: int) -> None:
    """A job accepted with --delay 1e12 (before delays were bounded) made jobq status ID fail
    with "year 33715 is out of range"."""
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE jobs SET status = 'scheduled', run_at = 1e12")
    connection.close()
    shown = jobq("status", str(seeded), COLUMNS="250")
    assert shown.returncode == 0, shown.stderr
    assert "1000000000000.0 (unix seconds, outside the calendar)" in shown.stdout
    assert cli_status(jobq, seeded)["run_at"] == 1e12


# -- memory limits ---------------------------------------------------------------------------


def test_a_memory_limit_beyond_what_rlimit_as_takes_is_refused(
    jobq: Any, database: str, seeded: int
) -> None:
    """2**70 MiB crash-looped every worker process (setrlimit: OverflowError), so a --burst
    worker never exited."""
    worker = ("worker", "--app", SAMPLE_APP, "--procs", "1", "--burst")
    assert_refused(jobq(*worker, "--max-memory", str(2**70), timeout=30), "--max-memory", "range")
    assert count_workers(database) == 0


def test_a_memory_limit_above_the_hard_limit_is_refused(
    cli_env: dict[str, str], database: str, seeded: int, tmp_path: Path
) -> None:
    """Only root raises a hard limit: each worker process's setrlimit failed, for ever."""
    hard_kib = 8 << 20  # 8 GiB of address space: Python starts in far less
    worker = [*JOBQ, "worker", "--app", SAMPLE_APP, "--procs", "1", "--burst"]
    result = subprocess.run(
        [
            "sh",
            "-c",
            f'ulimit -v {hard_kib} && exec "$@"',
            "sh",
            *worker,
            "--max-memory",
            "16384",
        ],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_refused(result, "16384 MiB", "hard limit", "8192 MiB")
    assert count_workers(database) == 0


# -- the library refuses the same ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_attempts", 2**63),
        ("max_attempts", 1_000_001),
        ("max_attempts", True),
        ("priority", 2**63),
        ("delay", 1e12),
        ("delay", math.nan),
        ("delay", -1),
        ("timeout", math.inf),
        ("timeout", 0),
        ("queue", "q\udcff"),
    ],
)
def test_submit_options_refused_by_the_library(
    app: JobQ, database: str, name: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        app.submit(ECHO, ["x"], **{name: value})
    assert count_jobs(database) == -1  # nothing written, no database made


@pytest.mark.parametrize(
    ("name", "value"),
    [("backoff", math.nan), ("max_backoff", math.inf), ("max_attempts", 10**7)],
)
def test_task_options_refused_by_the_library(app: JobQ, name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        app.task(**{name: value})(lambda: None)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"lease": math.nan}, "lease"),
        ({"lease": 0}, "lease"),
        ({"grace": math.inf}, "grace"),
        ({"cancel_grace": -1}, "cancel_grace"),
        ({"poll": 0}, "poll"),
        ({"idle_poll": math.nan}, "idle_poll"),
        ({"backstop": 1e12}, "backstop"),
        ({"idle_after": math.inf}, "idle_after"),
        ({"procs": 1, "memory_limit": 2**70}, "RLIMIT_AS"),
        ({"procs": 1, "memory_limit": 2**44}, "RLIMIT_AS"),
        ({"queues": ("default", "\udcff")}, "UTF-8"),
        ({"procs": 100_000}, "procs"),
        ({"threads": 100_000}, "threads"),
    ],
)
def test_worker_settings_refused_by_the_library(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        WorkerSettings(database="x", **settings)


def test_a_task_name_that_is_not_utf8_is_refused_by_the_library(app: JobQ) -> None:
    with pytest.raises(ConfigurationError, match="UTF-8"):
        app.submit("task\udcff")  # before: a raw UnicodeEncodeError from the database
    assert app.store.counts()["counts"]["queued"] == 0


@pytest.mark.parametrize("how", ["--app", "JOBQ_APP"])
def test_an_unknown_task_under_an_app_is_refused_naming_close_matches(
    jobq: Any, database: str, seeded: int, how: str
) -> None:
    typo = "tests.support.sample_tasks.ad"
    if how == "--app":
        line = refused_submit(jobq, database, "--app", SAMPLE_APP, typo, "1", "2")
    else:
        line = refused_submit(jobq, database, typo, "1", "2", JOBQ_APP=SAMPLE_APP)
    assert "no task named 'tests.support.sample_tasks.ad'" in line
    assert "did you mean tests.support.sample_tasks.add" in line


def test_an_argument_for_a_str_parameter_is_the_text_given(jobq: Any, database: str) -> None:
    done = jobq("submit", "--app", SAMPLE_APP, "tests.support.sample_tasks.record", "1")
    assert done.returncode == 0, done.stderr  # before: "Input should be a valid string"
    info = json.loads(jobq("status", done.stdout.strip(), "--json").stdout)
    assert info["args"] == ["1"]
    # Without a type hint to go by, an argument is JSON when it parses as JSON, as before.
    plain = jobq("submit", "--app", SAMPLE_APP, ECHO, "1")
    assert json.loads(jobq("status", plain.stdout.strip(), "--json").stdout)["args"] == [1]
