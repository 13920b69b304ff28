"""Work beside the main connection: jobs in order on a companion connection, on a thread of their own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from crmkit.db.loader import Loader


class Background:
    """Jobs run in order on a companion connection, on a thread of their own, each job in a
    transaction of its own: the server then works on a second core beside the main connection.

    A job is ``fn(loader)``.  The first job that fails stops the queue (the jobs after it are
    dropped, nothing more is written) and :meth:`close` raises its error, so a caller treats it
    like an error on the main connection.  What a job writes is committed independently of the
    main connection's transactions: callers submit only work that a crash may leave undone and
    that the next run can redo (see ``migrate.run``: the id map of a bulk insert).
    """

    def __init__(self, loader: Loader):
        import queue

        self.loader = loader
        self._todo: queue.Queue[tuple[Callable[[Loader], None], Callable[[], None] | None, Future[None]] | None] = (
            queue.Queue()
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="crmkit-background", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[Loader], None], then: Callable[[], None] | None = None) -> Future[None]:
        """Queue ``job``; ``then()`` runs on this thread once the job's transaction has committed.
        The future is done after that, or holds the error that stopped the queue."""
        done: Future[None] = Future()
        if self._error is not None:
            done.set_exception(self._error)
        else:
            self._todo.put((job, then, done))
        return done

    def raise_error(self) -> None:
        """Raise the error that stopped the queue, if one has (the caller stops feeding it)."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for every job; raise the first job's error.  The connection is closed either way."""
        self._todo.put(None)
        self._thread.join()
        try:
            self.loader.close()
        except Exception:
            pass
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (item := self._todo.get()) is not None:
            job, then, done = item
            if self._error is not None:
                done.set_exception(self._error)
                continue
            try:
                self.loader.begin()
                job(self.loader)
                self.loader.commit()
                if then is not None:
                    then()
                done.set_result(None)
            except BaseException as exc:
                self._error = exc
                done.set_exception(exc)
                try:
                    self.loader.rollback()
                except Exception:
                    pass
