"""The shared situation of a server process: one :class:`twin.situation.Situation` per data
version, with the map layers built from it, read by every browser session. No Panel here.

- :class:`SharedSituation` belongs to the process (one per workspace). :meth:`~SharedSituation.
  current` checks the workspace's :func:`twin.situation.fingerprint` at most every
  ``check_s`` seconds; new data (a fuse, a zone save, new alerts, an edited ``twin.toml``)
  gives a new :class:`Snapshot`, precomputed in a background thread (latest date first) while
  the old one keeps serving whatever it already holds.
- A :class:`Snapshot` is read-only: sessions only look things up. Layers are built once per
  (kind, date, language, privacy class, …) and kept in a bounded LRU, so two sessions showing
  the same thing share the same objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.situation import DataKey, OnceCache, Situation, fingerprint
from twin.store import Workspace

__all__ = ["LAYER_CACHE_SIZE", "SharedSituation", "Snapshot", "shared_situation"]

#: Map layers kept per snapshot (each a few hundred KB at most).
LAYER_CACHE_SIZE = 192


class Snapshot:
    """A :class:`~twin.situation.Situation` and the map layers built from it."""

    def __init__(self, situation: Situation) -> None:
        self.situation = situation
        self._layers = OnceCache(maxsize=LAYER_CACHE_SIZE)

    @property
    def key(self) -> DataKey:
        return self.situation.key

    def layer(self, key: Any, make: Callable[[], Any]) -> Any:
        """The layer for ``key``, built by ``make()`` once and shared (LRU-bounded)."""
        return self._layers.get(key, make)


class SharedSituation:
    """The current :class:`Snapshot` of one workspace, for every session of the process.

    Parameters
    ----------
    root
        The workspace directory.
    check_s
        How often (at most) to look for new data.
    background
        Precompute every date of a new snapshot in a daemon thread.
    """

    def __init__(self, root: str | Path, *, check_s: float = 2.0, background: bool = True
                 ) -> None:
        self.root = Path(root)
        self.check_s = check_s
        self.background = background
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._workspace: Workspace | None = None
        self._thread: threading.Thread | None = None
        #: Values that outlive a data version (e.g. the map's tooltip templates).
        self.templates = OnceCache()

    def _open(self, key: DataKey | None) -> Workspace:
        ws = self._workspace
        if ws is None or (self._snapshot is not None and key is not None
                          and key.config != self._snapshot.key.config):
            ws = self._workspace = Workspace.open(self.root)  # re-read twin.toml
        return ws

    def current(self, *, force: bool = False) -> Snapshot:
        """The snapshot of the workspace's current data (built on first use or new data).

        ``force`` looks for new data now rather than at most every ``check_s`` seconds (a
        page that has just saved a zone wants to see it at once).
        """
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and not force and now - self._checked < self.check_s:
            return snap
        with self._lock:
            snap = self._snapshot
            if (snap is not None and not force
                    and time.monotonic() - self._checked < self.check_s):
                return snap
            ws = self._open(None)
            key = fingerprint(ws)
            self._checked = time.monotonic()
            if snap is not None and key == snap.key:
                return snap
            ws = self._open(key)
            new = Snapshot(Situation(ws, key))
            if snap is not None:
                snap.situation.close()
            self._snapshot = new
            if self.background:
                self._start(new)
            return new

    def _start(self, snap: Snapshot) -> None:
        def work() -> None:
            try:
                snap.situation.precompute()
                snap.situation.prune_cache()
            except Exception:  # a failed precompute only costs speed: log it, serve on
                import logging

                logging.getLogger(__name__).exception("precomputing the situation failed")

        self._thread = threading.Thread(target=work, name="citytwin-situation", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background precompute of the current snapshot (True when done)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()


_SHARED: dict[Path, SharedSituation] = {}
_SHARED_LOCK = threading.Lock()


def shared_situation(root: str | Path, **options: Any) -> SharedSituation:
    """The process's :class:`SharedSituation` of the workspace at ``root`` (made once)."""
    path = Path(root).resolve()
    with _SHARED_LOCK:
        if path not in _SHARED:
            _SHARED[path] = SharedSituation(path, **options)
        return _SHARED[path]
