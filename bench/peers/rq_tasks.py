"""RQ task functions for bench/compare.py (``rq worker-pool -n 5``), enqueued by reference."""

from __future__ import annotations

import peer_common


def noop(number):  # type: ignore[no-untyped-def]
    peer_common.mark()


def stamp(index):  # type: ignore[no-untyped-def]
    peer_common.stamp(index)
