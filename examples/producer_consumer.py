"""The blog's producer/consumer examples, on jobq.

The blog shows three versions of one idea:

- two processes sharing a ``multiprocessing.Queue(5)``: ``download`` puts file names on it,
  ``getfile`` takes them off and "saves" them until the queue stays empty for 5 s;
- two threads, one downloading files while the other "listens to music";
- a producer thread and a consumer thread around a ``queue.Queue(10)``, ended by a ``None``.

Here the queue between the processes is the jobq database. This (main) process is the
producer: it submits one ``download`` job per file, half a second apart. A second process,
started like the blog's ``Process(target=getfile)``, is the consumer: a jobq worker with two
executor threads, so a download and a song play at the same time, as in the threads example.
The results come back through the database with ``job.result()``; the consumer is stopped
with SIGTERM (a graceful stop) instead of a 5 s timeout or a ``None`` sentinel.

What jobq adds:

- durability: a submitted job is a row on disk. Kill the consumer in the middle of a download
  and the job is queued again and run by the next worker; kill the producer and the jobs it
  already submitted still run;
- retries: a task raises ``jobq.Retry`` and runs again later (here the "5.exe" download drops
  its connection on the first attempt), and ``jobq.current_job()`` tells it which attempt it is.

Run from the repository root::

    python examples/producer_consumer.py        # database: $JOBQ_DB, else ./producer_consumer.db
    SLEEP_SCALE=0.1 python examples/producer_consumer.py   # sleep 10 times less
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

from jobq import JobQ, Retry, current_job

SLEEP_SCALE = float(os.environ.get("SLEEP_SCALE", "1"))  # multiplies every sleep

app = JobQ(os.environ.get("JOBQ_DB") or "producer_consumer.db")


def say(line: str) -> None:
    """Print a line with one write and flush it at once.

    Several processes share this terminal or pipe: one write per line keeps their lines whole,
    and the flush matters because worker processes end with os._exit, which drops buffers.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@app.task(max_attempts=3)
def download(file: str) -> str:
    """The consumer's work: 'download' and save one file."""
    job = current_job()
    assert job is not None  # always set inside a worker
    say(f"downloading {file} (job {job.id}, attempt {job.attempts})")
    time.sleep(0.5 * SLEEP_SCALE)
    if file.endswith(".exe") and job.attempts == 1:
        # Ask for another attempt a little later; after max_attempts the job fails.
        raise Retry(delay=0.2 * SLEEP_SCALE, reason=f"connection dropped while downloading {file}")
    say(f"saved {file}")
    return f"saved {file}"


@app.task(queue="music")
def listen_music(song: str) -> str:
    """Runs on another executor thread of the same worker while downloads go on."""
    time.sleep(0.5 * SLEEP_SCALE)
    say(f"listening to {song}")
    return song


def getfile() -> None:
    """The consumer process: a worker of 2 threads in this process, until SIGTERM."""
    app.run_worker(procs=0, threads=2)


if __name__ == "__main__":
    # Start the consumer first; it waits on the database, not on a pipe. It is started
    # before this process opens the database, so no connection crosses the fork.
    consumer = multiprocessing.Process(target=getfile, name="getfile")
    consumer.start()

    files, songs = [], []
    pairs = zip(["1.jpg", "5.exe", "6.csv"], ["Li Bai", "Shuohao Buku", "Daoxiang"], strict=True)
    for name, song in pairs:
        say(f"submitting download of {name}")
        files.append(download.submit(name))
        songs.append(listen_music.submit(song))
        time.sleep(0.5 * SLEEP_SCALE)

    # Gather the results: result() blocks until the job ends, and raises if it failed.
    for job in files + songs:
        say(f"job {job.id} {job.info().task}: {job.result(timeout=30)!r}")

    consumer.terminate()  # SIGTERM: stop claiming, finish running jobs, exit 0
    consumer.join(timeout=30)
    print(f"consumer exited with code {consumer.exitcode}")
