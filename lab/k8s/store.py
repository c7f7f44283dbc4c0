"""Thread-safe object store with a global resourceVersion and change notifications."""

from __future__ import annotations

import copy
import queue
import threading
from collections import defaultdict
from collections.abc import Callable

Listener = Callable[[str, str, dict], None]


class Store:
    """Objects by resource key (`pods`, `deployments.apps`), namespace and name.

    Listeners receive `(event, resource_key, object)` with event ADDED, MODIFIED or DELETED, on a
    dispatcher thread, after the change is committed, in commit order.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], dict]] = defaultdict(dict)
        self._revision = 0
        self._listeners: list[Listener] = []
        self._events: queue.Queue[tuple[str, str, dict] | None] = queue.Queue()
        self._history: list[tuple[int, str, str, dict]] = []
        self._history_changed = threading.Condition(self.lock)
        self._dispatcher = threading.Thread(target=self._dispatch, name="store-events", daemon=True)
        self._dispatcher.start()

    # -- reading --------------------------------------------------------------------------------
    def get(self, key: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self._objects[key].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, key: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            items = [obj for (ns, _), obj in self._objects[key].items() if namespace is None or ns == namespace]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return copy.deepcopy(items)

    @property
    def revision(self) -> int:
        with self.lock:
            return self._revision

    # -- writing --------------------------------------------------------------------------------
    def next_revision(self) -> str:
        with self.lock:
            self._revision += 1
            return str(self._revision)

    def put(self, key: str, obj: dict, event: str) -> dict:
        """Store `obj` as is (the caller set its resourceVersion) and announce `event`."""
        meta = obj["metadata"]
        with self.lock:
            self._objects[key][(meta.get("namespace", ""), meta["name"])] = copy.deepcopy(obj)
            self._record(event, key, obj)
        return copy.deepcopy(obj)

    def remove(self, key: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self._objects[key].pop((namespace, name), None)
            if obj is not None:
                obj = copy.deepcopy(obj)
                obj["metadata"]["resourceVersion"] = self.next_revision()
                self._record("DELETED", key, obj)
            return obj

    def subscribe(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.append(listener)

    def close(self) -> None:
        self._events.put(None)

    # -- watching -------------------------------------------------------------------------------
    def events_since(self, revision: int, key: str, timeout: float) -> list[tuple[int, str, dict]]:
        """Events of `key` after `revision`, waiting up to `timeout` seconds for the first one."""
        with self._history_changed:
            self._history_changed.wait_for(
                lambda: any(rev > revision and k == key for rev, _, k, _ in self._history[-500:]),
                timeout=timeout,
            )
            return [
                (rev, event, copy.deepcopy(obj)) for rev, event, k, obj in self._history if rev > revision and k == key
            ]

    def _record(self, event: str, key: str, obj: dict) -> None:
        snapshot = copy.deepcopy(obj)
        self._history.append((int(obj["metadata"]["resourceVersion"]), event, key, snapshot))
        del self._history[:-5000]
        self._history_changed.notify_all()
        self._events.put((event, key, snapshot))

    def _dispatch(self) -> None:
        while (item := self._events.get()) is not None:
            with self.lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener(*item)
