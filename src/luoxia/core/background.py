"""Loading a model on a thread while the command gets on with something else (`luoxia generate`'s head
start, `luoxia chat`'s prompt line): importing torch and reading the weights take 1.5 s or more, and
waiting for them before anything shows makes every command feel slow."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from luoxia.core.openmp import release_thread_pool

T = TypeVar("T")


class Loader(threading.Thread, Generic[T]):
    """Runs `load` on a daemon thread (Ctrl-C need not wait for torch); `result` waits and returns what it
    returned, or raises its error in the caller's thread. What it loads is used in the caller's thread, so
    the loading thread frees its OpenMP team when done (`core.openmp`: an idle team halves small kernels)."""

    def __init__(self, load: Callable[[], T]):
        super().__init__(name="luoxia-load", daemon=True)
        self.load: Callable[[], T] = load
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.load()
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread by `result`)
            self.error = e
        finally:
            release_thread_pool()

    @property
    def ready(self) -> bool:
        """Done loading (or failed): `result` will not wait."""
        return not self.is_alive()

    def result(self) -> T:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]
