"""`symdisc evolve --cluster auto|ADDRESS`: proposers and evaluators as Ray actors, overlapped.

The driver keeps the run database, the gate and the proposer's state; actors only turn requests
into replies (proposers) and code into sandbox answers (evaluators). The loop keeps every proposer
slot busy and every evaluator fed: when a reply comes back it is stored (pending), gated and queued;
when an answer comes back it is recorded. Each new request is built from the database just before
it is sent, so its prompt sees every result that has come back. An actor that dies has its task
retried once on another; a generation lost twice is recorded as failed (reason ``crash``), an
evaluation too. A replacement actor starts in the background (one per original actor at most), and
anything left when no evaluator is alive or coming stays pending for ``--resume``.

Ray is imported only here and only when a cluster run starts: the local path never loads it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Optional

from .contract import SCALAR
from .errors import BackendError, ConfigError, SandboxError, SymdiscError, UsageError
from .evolve import Evolution

STARTUP_TIMEOUT_S = 300.0  # evaluators import torch and may load the held-out data set
CRASH = {"ok": False, "stage": "sandbox", "reason": "crash"}


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--cluster needs Ray: pip install 'symdisc[ray]' (or use --cluster local)") from None
    return ray


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0].strip() if text else ''}"


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable head for minutes; a plain TCP connect says so in seconds."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--cluster must be local, auto or a Ray address HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
                          f"(is `ray start --head` running there?)") from None


def connect(address: str) -> bool:
    """Join a Ray cluster (``auto``: the one running here, else a new one on this machine).
    Returns whether this call connected (and so should disconnect at the end)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.WARNING, log_to_driver=True)
    try:
        if address == "auto":
            running = _running_here()
            if running:
                _use_token_if_any()
                ray.init(address=running, **quiet)
            else:
                ray.init(address="local", include_dashboard=False, **quiet)
        else:
            _reachable(address)
            _use_token_if_any()
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {_one_line(exc)} (a cluster with token "
                          f"authentication needs its token here: ~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
    return True


def _running_here() -> Optional[str]:
    """The address of the Ray cluster `ray start` left running here (or RAY_ADDRESS), if it answers.
    A head that was killed leaves its address behind, and Ray would retry it for minutes."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        address = canonicalize_bootstrap_address(None)  # None: "nothing running", not an error
    except Exception:  # a Ray whose internals differ: let ray.init look for itself
        return "auto"
    if not address:
        return None
    try:
        _reachable(address, timeout_s=2.0)
    except ConfigError:
        return None
    return address


def _use_token_if_any() -> None:
    """Authenticate like ``ray start --address`` does: with the token found here, if any (recent Ray
    heads require one by default; ``ray.init`` with an explicit address does not look for it)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)
    except ImportError:
        return  # a Ray without token authentication
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


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
                 heldout: bool = False, say: Optional[Callable[[str], None]] = None):
        self.address = address
        self.backend = backend  # None: the strategy proposes in the driver (genome, tpe, random)
        self.n_proposers = proposers
        self.n_evaluators = evaluators
        self.sandbox_args = dict(timeout_s=timeout_s, memory_mb=memory_mb, heldout=heldout)
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
        from .actors import EvaluatorActor, ProposerActor

        cpus = float(getattr(self.backend, "cpus", 0.0) or 0.0)  # a llama.cpp model takes a CPU slot
        slots = int(getattr(self.backend, "slots", 1) or 1)  # an endpoint pool serves several at once
        n_prop = 0
        if self.backend is not None:
            nodes = len([n for n in ray.nodes() if n.get("Alive")])
            n_prop = self.n_proposers or (nodes if cpus else 1)
            if hasattr(self.backend, "slots") and n_prop > 1:
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
                 timeout_s: Optional[float] = None) -> dict:
        """One evaluation on some evaluator, waited for; retried once if its actor dies."""
        ray = _ray()
        args = dict(memory=memory, stages=tuple(stages), proxy=proxy, timeout_s=timeout_s)
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


@dataclass
class _Generation:
    seq: int
    draft: object  # proposers.llm.Draft
    actor: int = -1
    tries: int = 0


@dataclass
class _Evaluation:
    candidate_id: int
    update: dict
    code: str
    genome: Optional[dict]
    actor: int = -1
    tries: int = 0


class ClusterEvolution(Evolution):
    """The loop of ``Evolution`` with proposal and evaluation overlapped on a ``Cluster`` (its sandbox)."""

    def _propose_until_spent(self) -> None:
        ray = _ray()
        cluster: Cluster = self.sandbox
        self._remote = hasattr(self.proposer, "prepare") and bool(cluster.proposers.actors)
        self._gens: dict = {}  # object ref -> _Generation
        self._evals: dict = {}  # object ref -> _Evaluation
        self._queue: deque = deque()  # gated candidates waiting for an evaluator
        self._retry: deque = deque()  # generations whose actor died, waiting for another
        self._seq = self.store.next_seq(self.run_id)
        while True:
            self._feed_proposers()
            self._feed_evaluators()
            refs = [*self._gens, *self._evals]
            if not refs and not (cluster.starting and (self._queue or self._retry or self._room())):
                break  # nothing in flight, and no replacement actor that work is waiting for
            refs += list(cluster.starting)
            # A replacement that never starts must not stall the loop: wake up now and then to expire it.
            ready, rest = ray.wait(refs, num_returns=1, timeout=10.0 if cluster.starting else None)
            if rest:  # take everything that is back, so the next prompt sees all of it
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                if ref in self._gens:
                    self._generated(ref, self._gens.pop(ref))
                elif ref in self._evals:
                    self._evaluated(ref, self._evals.pop(ref))
                else:
                    cluster.started(ref)
            cluster.expire_starts()
        if self._queue:
            raise SandboxError(f"every evaluator actor has died; {len(self._queue)} candidate(s) stay pending "
                               f"for --resume")

    def _room(self) -> bool:
        """Budget for one more proposal, counting those on their way."""
        c = self.config
        coming = len(self._gens) + len(self._retry)
        if c.candidates is not None and self.llm_candidates() + coming >= c.candidates:
            return False
        if c.minutes is not None and self.elapsed_s() >= c.minutes * 60:
            return False
        if c.evaluations is not None:
            judged = self.store.evaluated_count(self.run_id) + len(self._queue) + len(self._evals)
            if judged + coming >= c.evaluations:
                return False
        return True

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        self.on_event("generating", {"seq": seq})
        return seq

    # -- proposals -------------------------------------------------------------------------------
    def _feed_proposers(self) -> None:
        cluster: Cluster = self.sandbox
        if not self._remote:
            # Strategies that propose in the driver: one proposal per free evaluator, each made
            # after the previous was queued, so none waits long and each sees the latest results.
            while not self._queue and cluster.evaluators.has_free() and self._room():
                seq = self._next_seq()
                self._accept(seq, self.proposer.propose(self, seq))
                self._feed_evaluators()
            return
        if not cluster.proposers.alive:
            if cluster.replacing("proposer"):
                return  # retries and new requests wait for it
            while self._retry:
                self._lost_generation(self._retry.popleft())
            if not self._gens and self._room():
                raise BackendError("every proposer actor has died; the run can go on with --resume")
            return
        while self._retry:
            i = cluster.proposers.take()
            if i is None:
                return
            self._send(i, self._retry.popleft())
        # Backpressure: no more replies than the evaluators can take soon (stale prompts otherwise).
        while len(self._queue) < 2 * max(1, len(cluster.evaluators.alive)) and self._room():
            i = cluster.proposers.take()
            if i is None:
                return
            seq = self._next_seq()
            self._send(i, _Generation(seq, self.proposer.prepare(self, seq)))

    def _send(self, i: int, task: _Generation) -> None:
        actor = self.sandbox.proposers.actors[i]
        self._gens[actor.generate.remote(task.draft.request)] = replace(task, actor=i)

    def _generated(self, ref, task: _Generation) -> None:
        ray = _ray()
        cluster: Cluster = self.sandbox
        try:
            generation = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the backend failed (every endpoint down, ...)
            cluster.proposers.give(task.actor)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SymdiscError):
                raise type(cause)(str(cause)) from None
            raise BackendError(f"a proposer actor failed: {_one_line(exc)}") from None
        except ray.exceptions.RayError as exc:  # the actor died
            cluster.lost("proposer", task.actor, exc)
            if task.tries == 0:
                self._retry.append(replace(task, tries=1))
            else:
                self._lost_generation(task)
            return
        cluster.proposers.give(task.actor)
        self._accept(task.seq, self.proposer.finish(task.draft, generation))

    def _accept(self, seq: int, proposal) -> None:
        """Store a proposal (pending) and gate it; what passes waits for an evaluator."""
        candidate_id = self._store_proposal(seq, proposal)
        update, code = self.screen(candidate_id, proposal.text)
        if code is None:
            self.proposer.observe(proposal.genome, self._record(candidate_id, update))
        else:
            self._queue.append(_Evaluation(candidate_id, update, code, proposal.genome))

    def _lost_generation(self, task: _Generation) -> None:
        candidate_id = self.store.add_candidate(self.run_id, task.seq, "llm", parent_id=task.draft.parent_id,
                                                prompt=task.draft.request.user)
        self._record(candidate_id, dict(status="failed", stage="generate", reason="crash",
                                        message="the proposer actor died twice on this request"))

    # -- evaluations -----------------------------------------------------------------------------
    def _feed_evaluators(self) -> None:
        evaluators = self.sandbox.evaluators
        args = None
        while self._queue:
            i = evaluators.take()
            if i is None:
                return
            args = args or self.evaluation_args()
            job = replace(self._queue.popleft(), actor=i)
            self._evals[evaluators.actors[i].evaluate.remote(job.code, args)] = job

    def _evaluated(self, ref, job: _Evaluation) -> None:
        ray = _ray()
        cluster: Cluster = self.sandbox
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError as exc:
            cluster.lost("evaluator", job.actor, exc)
            if job.tries == 0:
                self._queue.appendleft(replace(job, tries=1))  # first in line for the next free evaluator
                return
            answer = dict(CRASH, message="the evaluator actor died twice with this candidate")
        else:
            cluster.evaluators.give(job.actor)
        self.proposer.observe(job.genome, self.settle(job.candidate_id, job.update, answer, job.code))
