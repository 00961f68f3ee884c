"""One connection per thread, for both backends: kept, forgotten after a fork, and closed
when its thread ends or the store closes.

Each connection gets a finalizer on a token kept in the store's thread-local storage. The
token goes when its thread ends, or when the store itself is collected (a store dropped
without close()): the finalizer then closes the connection, in the process that opened it.
It holds the connection and a weak reference to the store, never the store itself.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import suppress
from typing import Any

_INHERITED: list[Any] = []  # connections inherited across a fork: never closed, never used


class ThreadConnections:
    """The bookkeeping of a store's per-thread connections. A driver opens a connection and
    hands it to :meth:`_adopt`; :meth:`_forked` (first thing on every use) drops what a
    forked child inherited, without touching it: closing them could end the parent's
    sessions, or drop its SQLite locks."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._finalizers: dict[int, Any] = {}  # id(connection) -> its weakref.finalize
        self._lock = threading.RLock()  # re-entrant: a finalizer may run while it is held
        self._pid = os.getpid()

    def _forked(self) -> None:
        if self._pid != os.getpid():
            _INHERITED.extend(self._connections)
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
            self._finalizers = {}
            self._lock = threading.RLock()

    def _adopt(self, connection: Any, role: str = "connection") -> None:
        """Keep ``connection`` as this thread's ``role`` (its connection, or PostgreSQL's
        listener), closed when the thread ends or the store closes."""
        setattr(self._local, role, connection)
        with self._lock:
            self._connections.append(connection)
        close_with_thread(self, connection)

    def close(self) -> None:
        """Close this process's connections (a forked child's inherited ones stay as they are)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            connections, self._connections = self._connections, []
            finalizers, self._finalizers = self._finalizers, {}
            self._local = threading.local()  # before closing: no thread picks one up again
        for finalizer in finalizers.values():
            finalizer.detach()
        for connection in connections:
            with suppress(Exception):
                connection.close()


class ThreadToken:
    """Kept in a thread's local storage; collected when the thread ends."""


def close_with_thread(store: ThreadConnections, connection: Any) -> None:
    """Close ``connection`` once the calling thread (or ``store``) is gone."""
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
