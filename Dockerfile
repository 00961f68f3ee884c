# The image docker-compose.yml runs: jobq with PostgreSQL support, and the example app of
# tasks (examples/tasks.py). Your own image adds your tasks' package the same way.
FROM python:3.11-slim

WORKDIR /srv/jobq
COPY pyproject.toml README.md ./
COPY jobq ./jobq
COPY cli ./cli
COPY migrations ./migrations
COPY examples ./examples
RUN pip install --no-cache-dir '.[postgres]' \
    && useradd --system --home-dir /srv/jobq jobq
ENV PYTHONPATH=/srv/jobq PYTHONUNBUFFERED=1
USER jobq
ENTRYPOINT ["jobq"]
CMD ["--help"]
