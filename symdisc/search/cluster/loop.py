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

from collections import deque
from dataclasses import dataclass, replace
from typing import Optional

from symdisc.errors import BackendError, SandboxError, SymdiscError
from symdisc.search.loop import Evolution
from symdisc.search.cluster.connect import _one_line, _ray
from symdisc.search.cluster.supervise import CRASH, Cluster


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

    def _start_fitting(self) -> None:
        """Constant fitting scores its trials in the local sandbox; a clustered run does not fit."""

    def _propose_until_spent(self) -> None:
        ray = _ray()
        cluster: Cluster = self.sandbox
        self._remote = self.proposer.abilities.needs_model and bool(cluster.proposers.actors)
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
        update, code = self.screen(candidate_id, proposal.text, repair=proposal.origin == "llm")
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
