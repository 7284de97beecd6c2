"""Actor supervision: slots per actor, lost actors, replacements started in the background.

An actor that dies has its task retried once on another; a replacement starts in the background
(one per original actor at most).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from symdisc.contract import SCALAR
from symdisc.errors import ConfigError, SandboxError
from symdisc.search.cluster.connect import _one_line, _ray, connect

STARTUP_TIMEOUT_S = 300.0  # evaluators import torch and may load the held-out data set
CRASH = {"ok": False, "stage": "sandbox", "reason": "crash"}


class ActorSet:
    """Actors of one kind, each with a number of task slots; an actor that fails leaves the set, and
    a replacement joins it (a new index) once it has started."""

    def __init__(self, actors: list, slots: int = 1):
        self.actors = list(actors)
        self.slots = slots
        self.free = {i: slots for i in range(len(self.actors))}  # live actors only
        self._next = 0

    @property
    def alive(self) -> list:
        return sorted(self.free)

    def take(self) -> Optional[int]:
        """A live actor with a free slot, in turn; None when all are busy (or gone)."""
        live = self.alive
        for k in range(len(live)):
            i = live[(self._next + k) % len(live)]
            if self.free[i] > 0:
                self.free[i] -= 1
                self._next = (self._next + k + 1) % len(live)
                return i
        return None

    def has_free(self) -> bool:
        return any(n > 0 for n in self.free.values())

    def pick(self) -> Optional[int]:
        """A live actor in turn, busy or not (its queue holds the task until it is free)."""
        live = self.alive
        if not live:
            return None
        self._next = (self._next + 1) % len(live)
        return live[self._next]

    def give(self, i: int) -> None:
        if i in self.free:
            self.free[i] += 1

    def drop(self, i: int) -> None:
        self.free.pop(i, None)

    def join(self, i: int) -> None:
        self.free[i] = self.slots

    def busy(self) -> list:
        """Live actors with a task in flight (the cluster test kills one of these)."""
        return [self.actors[i] for i in self.alive if self.free[i] == 0]


class Cluster:
    """The actors of one run. It is also the run's sandbox: ``evaluate`` blocks, for the few
    evaluations the loop makes in line (the seeds, replies a killed run left pending, the funnel's
    held-out stage); the overlapping loop dispatches the rest itself."""

    def __init__(self, address: str, backend=None, proposers: Optional[int] = None,
                 evaluators: Optional[int] = None, timeout_s: float = 30.0, memory_mb: int = 2048,
                 heldout: bool = False, say: Optional[Callable[[str], None]] = None, cascade: Optional[dict] = None):
        self.address = address
        self.backend = backend  # None: the strategy proposes in the driver (genome, tpe, random)
        self.n_proposers = proposers
        self.n_evaluators = evaluators
        self.sandbox_args = dict(timeout_s=timeout_s, memory_mb=memory_mb, heldout=heldout, cascade=cascade)
        self.heldout = heldout
        self.say = say or (lambda message: None)
        self.proposers = ActorSet([])
        self.evaluators = ActorSet([])
        self._new_actor: dict = {}  # kind -> a function that starts one more actor of that kind
        # Each actor may be replaced once on average: enough for a lost node or two, not an endless
        # loop of replacements when something kills every actor it reaches.
        self.replacements_left: dict = {}
        self.starting: dict = {}  # ready() ref of a replacement -> (kind, index, start time)
        self._connected = False

    # -- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> "Cluster":
        self._connected = connect(self.address)
        try:
            self._start_actors()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_actors(self) -> None:
        ray = _ray()
        from symdisc.search.cluster.actors import EvaluatorActor, ProposerActor

        cpus = float(self.backend.cpus) if self.backend is not None else 0.0  # a llama.cpp model takes a CPU
        slots = int(self.backend.slots) if self.backend is not None else 1  # a pool serves several at once
        n_prop = 0
        if self.backend is not None:
            nodes = len([n for n in ray.nodes() if n.get("Alive")])
            n_prop = self.n_proposers or (nodes if cpus else 1)
            if self.backend.remote and n_prop > 1:
                # Model servers: the per-endpoint limit lives in the backend, and copies in several
                # actors would each allow it. HTTP costs no CPU: one actor drives every slot.
                self.say(f"cluster: one proposer actor drives all {slots} endpoint slot(s) "
                         f"(--proposers {n_prop} ignored with --api-base)")
                n_prop = 1
        total = int(ray.cluster_resources().get("CPU", 1))
        n_eval = self.n_evaluators or max(1, int(total - n_prop * cpus))
        Proposer = ray.remote(ProposerActor).options(num_cpus=cpus, max_concurrency=slots)  # noqa: N806
        Evaluator = ray.remote(EvaluatorActor).options(num_cpus=1)  # noqa: N806
        self._new_actor = {"proposer": lambda: Proposer.remote(self.backend),
                           "evaluator": lambda: Evaluator.remote(**self.sandbox_args)}
        self.replacements_left = {"proposer": n_prop, "evaluator": n_eval}
        self.proposers = ActorSet([self._new_actor["proposer"]() for _ in range(n_prop)], slots)
        self.evaluators = ActorSet([self._new_actor["evaluator"]() for _ in range(n_eval)])
        everyone = self.proposers.actors + self.evaluators.actors
        try:
            hosts = ray.get([a.ready.remote() for a in everyone], timeout=STARTUP_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"the cluster did not start {n_prop} proposer and {n_eval} evaluator actors in "
                              f"{STARTUP_TIMEOUT_S:g} s (too few CPUs? see `ray status`)") from None
        except ray.exceptions.RayError as exc:
            raise ConfigError(f"an actor failed to start: {_one_line(exc)}") from None
        self.say(f"cluster: {n_prop} proposer(s) x {slots} slot(s), {n_eval} evaluator(s) on "
                 f"{len(set(hosts))} node(s)")

    def __exit__(self, *exc) -> None:
        ray = _ray()
        for actor in self.proposers.actors + self.evaluators.actors:
            try:
                ray.kill(actor)
            except Exception:
                pass  # already gone
        if self._connected:
            ray.shutdown()
            self._connected = False

    # -- failures --------------------------------------------------------------------------------
    def _group(self, kind: str) -> ActorSet:
        return self.proposers if kind == "proposer" else self.evaluators

    def lost(self, kind: str, i: int, exc: BaseException) -> None:
        """An actor whose task failed is out of the run (killed, in case it is only sick); a
        replacement starts in the background while the others carry on."""
        group = self._group(kind)
        if i not in group.free:
            return
        group.drop(i)
        try:
            _ray().kill(group.actors[i])
        except Exception:
            pass
        replacing = self.replacements_left.get(kind, 0) > 0
        self.say(f"{kind} actor {i} lost ({_one_line(exc)}); {len(group.alive)} left"
                 + ("; starting a replacement" if replacing else "; no replacements left"))
        if replacing:
            self.replacements_left[kind] -= 1
            group.actors.append(self._new_actor[kind]())
            self.starting[group.actors[-1].ready.remote()] = (kind, len(group.actors) - 1, time.monotonic())

    def replacing(self, kind: str) -> bool:
        return any(k == kind for k, _, _ in self.starting.values())

    def started(self, ref) -> None:
        """A replacement's ready() came back: it joins its set, or is reported and forgotten."""
        ray = _ray()
        kind, i, _ = self.starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.say(f"a replacement {kind} actor failed to start ({_one_line(exc)})")
            return
        self._group(kind).join(i)
        self.say(f"{kind} actor {i} started in place of a lost one")

    def expire_starts(self) -> None:
        """Give up on replacements that found no room within the start-up time."""
        now = time.monotonic()
        for ref, (kind, i, t0) in list(self.starting.items()):
            if now - t0 > STARTUP_TIMEOUT_S:
                del self.starting[ref]
                try:
                    _ray().kill(self._group(kind).actors[i])
                except Exception:
                    pass
                self.say(f"a replacement {kind} actor did not start in {STARTUP_TIMEOUT_S:g} s (no free CPU?)")

    def wait_for_replacement(self, kind: str) -> None:
        """Block until the replacements of this kind have started or failed (the in-line path)."""
        ray = _ray()
        for ref in [r for r, (k, _, _) in self.starting.items() if k == kind]:
            done, _ = ray.wait([ref], timeout=STARTUP_TIMEOUT_S)
            if done:
                self.started(ref)
        self.expire_starts()

    # -- the sandbox interface -------------------------------------------------------------------
    def evaluate(self, code: str, memory: str = SCALAR, stages=("probe",), proxy: Optional[dict] = None,
                 timeout_s: Optional[float] = None, heldout: Optional[dict] = None,
                 cascade: Optional[dict] = None, max_buffers: Optional[int] = None) -> dict:
        """One evaluation on some evaluator, waited for; retried once if its actor dies."""
        ray = _ray()
        args = dict(memory=memory, stages=tuple(stages), proxy=proxy, timeout_s=timeout_s, heldout=heldout)
        if cascade is not None:
            args["cascade"] = cascade
        if max_buffers is not None:
            args["max_buffers"] = max_buffers
        for _ in range(2):
            i = self.evaluators.pick()
            if i is None and self.replacing("evaluator"):
                self.wait_for_replacement("evaluator")
                i = self.evaluators.pick()
            if i is None:
                raise SandboxError("every evaluator actor has died; the run can go on with --resume")
            try:
                return ray.get(self.evaluators.actors[i].evaluate.remote(code, args))
            except ray.exceptions.RayError as exc:
                self.lost("evaluator", i, exc)
        return dict(CRASH, message="the evaluator actor died twice with this candidate")
