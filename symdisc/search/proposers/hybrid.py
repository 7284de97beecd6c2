"""The hybrid proposer: the mutation engine and constant fitting judged without pause, the model as
one more source whose replies join the population as they arrive.

The model decodes in a background thread, one request at a time, on its own core (llama.cpp pinned
to core 0, the sandbox worker to core 1: DEVELOPERS.md records that pinned, both run at full
speed, while unpinned llama.cpp beside torch slows about eight-fold). The loop never waits for it:
each step first takes the replies that came back (``poll``), then judges one proposal of the
mutation engine or the fitter. The model's prompts are built by the llm proposer from the run's
best programs, whoever found them (every evaluated program joins its islands).

A bandit (``RateBandit``) over the sources that share the judge's core (each mutation kind,
crossover, fitting) sets the mix, rewarded by improvements per wall-clock second: 1 when the child
beats its parent (the run's order), 0.1 for any other new program. The model's replies are scored
the same way per second of generation (``model:NAME`` arms) and reported beside them; the model
runs whenever its core is free, since that core has nothing else to do. Bandit, populations and
islands are stored with the run (``runs.search_json``), so ``--resume`` continues them; a request
in flight when the run stops is lost (its prompt is rebuilt from the database on resume).
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Optional

from symdisc.search.diversity import RateBandit
from symdisc.search.mutations import KINDS
from symdisc.search.proposers import Abilities, Proposal
from symdisc.search.proposers.mutate import MutateProposer
from symdisc.store import best_key

MODEL_CORE, JUDGE_CORE = 0, 1
NEW_REWARD, BETTER_REWARD = 0.1, 1.0


def pin(pid: int, core: int) -> bool:
    """Pin a process (0: the calling thread) to one core, where the machine has it."""
    try:
        if core < (os.cpu_count() or 1) and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(pid, {core})
            return True
    except OSError:
        pass
    return False


class HybridProposer:
    name = "hybrid"
    abilities = Abilities(asynchronous=True, needs_model=True)

    def __init__(self, llm, pin_cores: bool = True):
        self.llm = llm  # an LLMProposer (mode llm)
        self.info = dict(llm.info)
        self.mutate = MutateProposer()
        self.pin_cores = pin_cores and (os.cpu_count() or 1) >= 2
        self.bandit = RateBandit(list(KINDS) + ["fit"])
        self.models = RateBandit([f"model:{n}" for n in llm.model_names])
        self.evolution = None
        self._requests: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._inflight = 0
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._pending: dict = {}  # id(proposal) -> (arm, t0), in judging order, matched in observe
        self._pinned_worker = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, evolution) -> None:
        self.evolution = evolution
        self.llm.start(evolution)
        self.mutate.start(evolution)
        saved = evolution.search_state().get("hybrid") or {}
        self.bandit.load(saved.get("bandit"))
        self.models.load(saved.get("models"))
        for pid, row in evolution.db.programs.items():  # the model sees every source's programs
            if pid not in self.llm.islands.members:
                self.llm.islands.add(pid, row.get("island") if row.get("origin") != "seed" else None)
        if self._thread is None:
            self._thread = threading.Thread(target=self._generate, name="symdisc-model", daemon=True)
            self._thread.start()
        self._pin_worker()

    def _pin_worker(self) -> None:
        pid = (getattr(self.evolution.sandbox, "info", None) or {}).get("pid")
        if self.pin_cores and pid and pid != self._pinned_worker:
            if pin(pid, JUDGE_CORE):
                self._pinned_worker = pid

    def _generate(self) -> None:
        """The model's thread: requests in, generations out; nothing here touches the database."""
        if self.pin_cores:
            pin(0, MODEL_CORE)
        while not self._stop.is_set():
            try:
                draft = self._requests.get(timeout=0.2)
            except queue.Empty:
                continue
            backend = self.llm.models[draft.model_index][1]
            try:
                generation = backend.generate(draft.request)
            except Exception as exc:  # the loop raises it from poll, in the main thread
                self._replies.put((draft, exc))
                continue
            self._replies.put((draft, generation))

    def state(self) -> dict:
        return {"bandit": self.bandit.to_dict(), "models": self.models.to_dict()}

    def _save(self) -> None:
        self.evolution.save_search_state("hybrid", self.state())

    # -- the model's replies -------------------------------------------------------------------
    def _keep_model_busy(self, evolution) -> None:
        if self._inflight == 0 and not self._stop.is_set():
            seq = evolution.store.next_seq(evolution.run_id)
            self._requests.put(self.llm.prepare(evolution, seq))
            self._inflight += 1

    def poll(self, evolution) -> list[Proposal]:
        """Replies that came back since the last call (and a new request when the model is free)."""
        out = []
        while True:
            try:
                draft, generation = self._replies.get_nowait()
            except queue.Empty:
                break
            self._inflight -= 1
            if isinstance(generation, Exception):
                raise generation
            proposal = self.llm.finish(draft, generation)
            self._pending[id(proposal)] = (f"model:{draft.meta.get('model')}", time.monotonic() - generation.ms / 1e3)
            out.append(proposal)
        self._keep_model_busy(evolution)
        return out

    # -- the judge core's sources --------------------------------------------------------------
    def propose(self, evolution, seq: int) -> Proposal:
        self._pin_worker()
        self._keep_model_busy(evolution)
        rng = random.Random(evolution.config.seed * 1_000_003 + seq)
        t0 = time.monotonic()
        arm = self.bandit.choose(rng, self._allowed(evolution))
        proposal = None
        if arm == "fit" and evolution.fitter is not None:
            proposal = evolution.fitter.propose(evolution, seq)
            if proposal is None:  # nothing gained: the time still counts against fitting
                self.bandit.update("fit", 0.0, time.monotonic() - t0)
                self._save()
                t0 = time.monotonic()
                arm = self.bandit.choose(rng, [k for k in KINDS])
        if proposal is None:
            proposal = self.mutate.propose(evolution, seq, kind=arm)
            arm = proposal.meta.get("operator") or arm
        self._pending[id(proposal)] = (arm, t0)
        return proposal

    def _allowed(self, evolution) -> list:
        arms = list(KINDS)
        if evolution.fitter is not None and evolution.fitter.due(evolution) is not None:
            arms.append("fit")
        return arms

    def observe(self, genome, row: dict) -> None:
        evo = self.evolution
        arm, t0 = self._match(row)
        self.llm.observe(genome, row)
        self.mutate.observe(genome, row)
        if row.get("status") == "evaluated" and row["origin"] != "llm" and row["id"] not in self.llm.islands.members:
            self.llm.islands.add(row["id"], row.get("island"))
        if arm is None:
            return
        reward = 0.0
        if row.get("status") == "evaluated":
            parent = evo.db.programs.get(row.get("parent_id")) if row.get("parent_id") else None
            better = parent is not None and best_key(row) < best_key(parent)
            reward = BETTER_REWARD if better else NEW_REWARD
        bandit = self.models if arm.startswith("model:") else self.bandit
        bandit.update(arm, reward, time.monotonic() - t0)
        self._save()

    def _match(self, row: dict):
        """The (arm, start time) of the proposal a verdict belongs to."""
        for key, (arm, t0) in list(self._pending.items()):
            origin = "llm" if arm.startswith("model:") else ("fit" if arm == "fit" else "mutate")
            if origin == row.get("origin"):
                del self._pending[key]
                return arm, t0
        return None, None

    def stop(self) -> None:
        """End the model's thread (a request in flight is dropped); the backend stays open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self._stop.clear()
        self._inflight = 0
        self._requests = queue.Queue()
        self._replies = queue.Queue()

    def close(self) -> None:
        self.stop()
        self.llm.close()
