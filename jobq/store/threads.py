"""Closing a thread's connections when the thread ends (both backends keep one per thread).

Each connection gets a finalizer on a token kept in the store's thread-local storage. The
token goes when its thread ends, or when the store itself is collected (a store dropped
without close()): the finalizer then closes the connection, in the process that opened it.
It holds the connection and a weak reference to the store, never the store itself.
"""

from __future__ import annotations

import os
import weakref
from contextlib import suppress
from typing import Any


class ThreadToken:
    """Kept in a thread's local storage; collected when the thread ends."""


def close_with_thread(store: Any, connection: Any) -> None:
    """Close ``connection`` once the calling thread (or ``store``) is gone. ``store`` has
    ``_local``, ``_lock`` (re-entrant), ``_connections`` and ``_finalizers``."""
    token = getattr(store._local, "token", None)
    if token is None:
        token = store._local.token = ThreadToken()
    store._finalizers[id(connection)] = weakref.finalize(
        token, _thread_ended, weakref.ref(store), connection, os.getpid()
    )


def _thread_ended(owner: Any, connection: Any, pid: int) -> None:
    if os.getpid() != pid:  # collected in a forked child: the parent's, never touched here
        return
    store = owner()
    if store is not None:
        with store._lock:
            if connection in store._connections:
                store._connections.remove(connection)
            store._finalizers.pop(id(connection), None)
    with suppress(Exception):
        connection.close()
