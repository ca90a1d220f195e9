"""The DAG scheduler: a step starts the moment its last dependency's record is durable.

Not layer by layer: each finished step releases exactly the dependants it unblocks. The
run-wide `concurrency` caps steps in flight; providers and MCP servers have their own limits.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

import anyio

from engine.deadlines import run_slots
from engine.executor.events import StepFinished
from engine.executor.result import StepResult
from engine.executor.step import execute_step, plan_of

if TYPE_CHECKING:
    from engine.executor.context import RunContext

#: statuses of a step that did not run: its dependants do not run either
_NEVER_RAN = ("skipped", "cancelled")


class _Slot:
    """Where one idle worker waits (reused each time it parks): it sets `called` to False and
    awaits `wake.acquire()` itself (a coroutine less to suspend and resume than a `wait()`
    method); `called`: woken for ready steps rather than to leave."""

    __slots__ = ("called", "wake")

    def __init__(self) -> None:
        self.wake = anyio.Semaphore(0)
        self.called = False

    def call(self) -> None:
        self.called = True
        self.wake.release()

    def dismiss(self) -> None:
        self.wake.release()


class Scheduler:
    def __init__(self, rc: RunContext, done: dict[str, StepResult]) -> None:
        self.rc = rc
        wf = rc.workflow
        self.preds, self.succs = wf.edges
        self.limit = rc.options.concurrency or wf.spec.concurrency
        #: results so far, including steps restored from a resumed run
        self.results = done
        self.ready: deque[str] = deque()
        self.in_flight = 0
        self.workers = 0
        #: idle workers, each waiting on its own slot (the last parked is woken first)
        self._parked: list[_Slot] = []
        #: a worker was woken or spawned for ready steps and has not looked at them yet
        self._coming = 0
        #: a worker is between two steps (it will look at the ready steps next)
        self._between = False
        self._dispatch = anyio.Event()
        self._dispatch_asked = False
        #: surplus workers are to be dismissed by the dispatcher
        self._dismissing = False
        #: steps are the waiting kind (a worker's step yielded with steps still ready): a
        #: newly ready step gets a worker of its own at once, without the dispatcher's hop
        self._waiting_steps = False
        self.failed = False
        self.stopping = False
        #: workers take no more steps: the run is stopping, or a capacity wait ended with a
        #: worker more than the limit (the next one between two steps leaves)
        self._paused = False
        self.cancel_scope: anyio.CancelScope | None = None
        self.continue_default = wf.spec.defaults.continue_on_error
        #: unfinished dependencies per step (restored steps of a resumed run: -1, never 0)
        if done:
            self.remaining = {n: -1 if n in done else sum(1 for p in ps if p not in done)
                              for n, ps in self.preds.items()}
        else:
            self.remaining = dict(wf.dependency_counts)
        self._initial = sorted(n for n, count in self.remaining.items() if count == 0)
        #: steps neither started nor settled: no more workers than this will ever be needed
        self.unstarted = len(self.remaining) - len(done)

    async def run(self) -> None:
        for result in self.results.values():
            self._publish(result)
        token = run_slots.set(weakref.ref(self))  # the workers (spawned below) inherit it
        try:
            await self._run()
        finally:
            run_slots.reset(token)

    async def _run(self) -> None:
        async with anyio.create_task_group() as tg:
            self.cancel_scope = tg.cancel_scope
            self.rc.writer.bind(tg)
            self.rc.writer.on_error = lambda _exc: self.stop()
            self.rc.writer.on_durable = self._durable
            self._tg = tg
            for sid in self._initial:
                self._release(sid)
            tg.start_soon(self._dispatcher)
            self._launch()
            if self._over():  # nothing to run (every step was restored or settled)
                self._wake_all()
            tg.start_soon(self._prespawn)

    # A pool of workers, not a task per step: a worker takes the next ready step, runs it,
    # releases its dependants and takes the next, so a 2,000-step DAG of quick steps spawns
    # a few dozen tasks, not 2,000 (a task spawn costs far more than a quick step).
    #
    # Newly ready steps wake ONE idle worker. When a worker takes a step while others are
    # still ready, it asks the dispatcher for help; the dispatcher runs once that worker has
    # yielded, so it wakes (or spawns) workers only if the step really waits (an LLM call)
    # and steps are still ready. Quick steps are all run by the first worker; waking the whole
    # pool for every finished layer cost ~4 µs a step in wake-ups that found nothing to do.
    # Once steps have shown that they wait, newly ready steps get a worker each at once (no
    # dispatcher hop); a worker woken for a step that another one already ran switches back.

    def _launch(self) -> None:
        """Steps became ready: make sure a worker will look at them."""
        if self.stopping or not self.ready:
            return
        if self._waiting_steps:
            self._hand_out()
        elif not self._between and not self._coming:
            if self._parked:
                self._coming += 1
                self._parked.pop().call()
            elif self.workers < self.limit:
                self._spawn(1)
        if self._parked and self._surplus() > 0 and not self._dismissing:
            # more workers than the rest of the run can use (a fan-in): they leave while its
            # last steps run, rather than all at once when the run ends. The dispatcher
            # dismisses them once the worker just called has started its step: hundreds of
            # wake-ups here would delay the step that ends a fan-in
            self._dismissing = True
            self._dispatch.set()

    def _spawn(self, count: int) -> None:
        self.workers += count
        self._coming += count
        for _ in range(count):
            self._tg.start_soon(self._worker, True)

    async def _dispatcher(self) -> None:
        """Wakes or spawns a worker for every step still ready after the first has yielded."""
        while True:
            await self._dispatch.wait()
            self._dispatch, self._dispatch_asked = anyio.Event(), False
            if self.stopping or self._over():
                return
            if self._dismissing:
                self._dismissing = False
                for _ in range(min(self._surplus(), len(self._parked))):
                    self._parked.pop().dismiss()
            if len(self.ready) > self._coming:
                self._waiting_steps = True
                self._hand_out()

    def _hand_out(self) -> None:
        """A worker for every ready step without one coming: idle ones first, then new."""
        unclaimed = len(self.ready) - self._coming - self._between
        while unclaimed > 0 and self._parked:
            self._coming += 1
            self._parked.pop().call()
            unclaimed -= 1
        if unclaimed > 0 and self.workers < self.limit:
            self._spawn(min(unclaimed, self.limit - self.workers))

    async def _prespawn(self) -> None:
        """Start the workers a wide layer will need while the first steps run, a few per
        event-loop turn, so a fan-out does not pay for hundreds of task spawns at once. The
        DAG's width is worked out here too, once the first steps are running. Then the plans
        of the steps not planned yet are worked out the same way, a few per turn: a step
        released later (hundreds at once by a fan-out) starts without that work."""
        target = min(self.limit, self.rc.workflow.width)
        while self.workers < target and not self.stopping and not self._over():
            for _ in range(min(8, target - self.workers)):
                self.workers += 1
                self._tg.start_soon(self._worker, False)
            await anyio.sleep(0)
        plans = self.rc.plans
        unplanned = [sid for sid in self.remaining if sid not in plans]
        for start in range(0, len(unplanned), 32):
            if self.stopping or self._over():
                return
            for sid in unplanned[start:start + 32]:
                plan_of(self.rc, sid)
            await anyio.sleep(0)

    def _wake_all(self) -> None:
        """The run is over or stopping: every idle worker (and the dispatcher) leaves."""
        parked, self._parked = self._parked, []
        for slot in parked:
            slot.dismiss()
        self._dispatch.set()
        self.rc.writer.close()

    async def _worker(self, called: bool) -> None:
        rc = self.rc
        ready = self.ready
        slot = _Slot()
        while True:
            if called:  # woken or spawned for ready steps: now looking at them
                self._coming -= 1
                if not ready:  # another worker ran it in the meantime: steps are quick
                    self._waiting_steps = False
            while ready and not self._paused:
                sid = ready.popleft()
                self.unstarted -= 1
                if len(ready) > self._coming and not self._dispatch_asked:
                    self._dispatch_asked = True
                    self._dispatch.set()
                self.in_flight += 1
                result = await execute_step(rc, sid)
                del rc.running[sid]
                if result.status == "failed" and not self.stopping and self._halts(sid):
                    # at once, not when its record is durable: until then this worker (and
                    # others) would go on starting ready steps that the run then calls
                    # cancelled, and a command among them would have run
                    self.stop()
                if rc.listening:
                    self._announce(result)  # in the step's own task, before it is durable
                self.in_flight -= 1
                self._between = True
                writer = rc.writer
                writer.submit(None if writer.store is None else rc.services.step_row(rc, result),
                              result, alone=not self.in_flight and not ready)
                self._between = False
            if self.stopping or self._over():
                break
            if self._paused:  # a worker more than the limit: this one leaves
                if self.workers > self.limit:
                    break
                self._paused, called = False, False
                continue
            self._parked.append(slot)
            slot.called = False
            await slot.wake.acquire()
            called = slot.called
            if not called and (self.stopping or self._over() or self._surplus() > 0):
                break
        self.workers -= 1
        if self.stopping or self._over():
            self._wake_all()  # the others see that the run is over too
        elif self._paused:  # left as a worker too many
            self._paused = self.workers > self.limit
            self._launch()  # ready steps it left behind get a worker

    # A step that waits for a provider's or MCP server's capacity (engine.deadlines) does not
    # hold one of the run's `concurrency` slots meanwhile: steps queued on one slow provider
    # would otherwise keep every other step waiting behind them.

    def capacity_wait_began(self) -> None:
        self.limit += 1
        self._launch()

    def capacity_wait_ended(self) -> None:
        """The step is back to work, and goes on at once. The run takes its slot back by
        letting workers leave between steps (an idle one at once) until it is within its
        concurrency again; meanwhile no worker starts a step. The step does not wait for a
        slot itself: it holds the capacity it waited for, and the step in its slot may be
        waiting for that very capacity (a deadlock)."""
        self.limit -= 1
        if self.workers > self.limit and not self.stopping:
            self._paused = True
            if self._parked:
                self._parked.pop().dismiss()

    def _surplus(self) -> int:
        """Workers more than the rest of the run can use (0 or less: none)."""
        return self.workers - self.unstarted - self.in_flight - 1

    def _durable(self, result: StepResult) -> None:
        """`result` is in the run record: now its dependants may start."""
        self._finish(result, announced=True)
        self._launch()
        if self._over():
            self._wake_all()  # idle workers see that the run is over and leave

    def _over(self) -> bool:
        return not self.in_flight and not self.ready and not self.rc.writer.pending

    def _release(self, sid: str) -> None:
        """All of `sid`'s dependencies are done: run it, or settle it without running."""
        results = self.results
        preds = self.preds[sid]
        for pred in preds:  # a loop, not all(...): a fan-out releases hundreds at once
            if results[pred].status != "succeeded":
                break
        else:
            self.ready.append(sid)  # the common case
            return
        blocked = [p for p in preds if self._blocks(p)]
        if blocked:
            # each named for what it is: "failed dependency: b; skipped dependency: a"
            by = {what: [p for p in blocked if results[p].status == what]
                  for what in ("failed", "cancelled", "skipped")}
            status = "skipped" if len(by["skipped"]) == len(blocked) else "cancelled"
            reason = "; ".join(f"{what} dependency: {', '.join(names)}"
                               for what, names in by.items() if names)
            now = time.time()
            result = StepResult(sid, self.rc.workflow.kind(sid), status, started_at=now,
                                finished_at=now, reason=reason)
            self.rc.writer.note(self.rc.services.step_row(self.rc, result))
            self.unstarted -= 1
            self._finish(result)
        else:
            self.ready.append(sid)

    def _blocks(self, dep: str) -> bool:
        result = self.results[dep]
        if result.status in _NEVER_RAN:
            # continue_on_error tolerates the step's own failure, not one upstream of it: a
            # step cancelled by a failed dependency (--keep-going) never ran, and neither may
            # the steps below it
            return True
        if result.status == "failed":
            return not self._continues(dep)
        return False

    def tolerates(self, sid: str) -> bool:
        """Is `sid` allowed to fail (continue_on_error, its own or the default)?"""
        return self._continues(sid)

    def _halts(self, sid: str) -> bool:
        """Does `sid` failing stop the run? (Not with continue_on_error or --keep-going.)"""
        return not self.rc.options.keep_going and not self._continues(sid)

    def _continues(self, sid: str) -> bool:
        flag = self.rc.workflow.step(sid).continue_on_error
        return self.continue_default if flag is None else flag

    def _finish(self, result: StepResult, *, announced: bool = False) -> None:
        sid = result.step_id
        self.results[sid] = result
        self._publish(result, announced=announced)
        if result.status == "failed" and not self._continues(sid):
            self.failed = True
            if self._halts(sid):
                self.stop()
        remaining, preds = self.remaining, self.preds
        succeeded = result.status == "succeeded"
        for succ in self.succs[sid]:
            left = remaining[succ] = remaining[succ] - 1
            if left == 0 and not self.stopping:
                if succeeded and len(preds[succ]) == 1:  # `sid` was its only dependency
                    self.ready.append(succ)
                else:
                    self._release(succ)

    def _publish(self, result: StepResult, *, announced: bool = False) -> None:
        self.rc.steps_view[result.step_id] = {
            "output": result.output, "status": result.status,
            "usage": result.usage, "error": result.error,
        }
        if not announced:
            self._announce(result)

    def _announce(self, result: StepResult) -> None:
        """StepFinished, emitted by the task that ran the step (listeners such as tracing
        close what they opened in that task's context)."""
        if self.rc.listening:
            redact = self.rc.services.redact  # listeners see no secret either
            self.rc.emit(StepFinished(self.rc.run_id, result.finished_at or time.time(),
                                      result.step_id, result.status, result.duration,
                                      result.attempts, redact(result.output), result.error,
                                      result.reason, result.usage, result.cost, result.kind))

    def stop(self) -> None:
        """Stop starting steps and cancel those in flight."""
        self.stopping = self._paused = True
        self._wake_all()
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def unfinished(self) -> list[str]:
        if len(self.results) == len(self.preds):  # the usual end: every step settled
            return []
        return [n for n in self.preds if n not in self.results]


#: the order of the usage keys LLM steps report (any others follow, sorted)
_USAGE_KEYS = ("input_tokens", "output_tokens", "cached_input_tokens")


def summarise(results: dict[str, StepResult]) -> tuple[dict[str, int], float]:
    """The run's usage and cost: the sums over its steps (one pass per key: a run of
    thousands of steps adds them up in well under a millisecond). The cost is that of the
    steps whose cost is known (a None cost is left out)."""
    usages = [r.usage for r in results.values() if r.usage]
    present = set().union(*usages)
    keys = [k for k in _USAGE_KEYS if k in present] + sorted(present - set(_USAGE_KEYS))
    usage = {key: _total(usages, key) for key in keys}
    return usage, sum(filter(None, map(_COST, results.values())), 0.0)


_COST = attrgetter("cost")


def _total(usages: list[dict[str, int]], key: str) -> int:
    try:  # the usual case, every step reported `key`: summed in C
        return sum(map(itemgetter(key), usages))
    except KeyError:
        return sum([u.get(key, 0) for u in usages])
