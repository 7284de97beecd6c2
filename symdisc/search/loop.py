"""The discovery loop: sources of programs -> (repair) -> gate -> sandbox -> store.

One scheduler feeds one judge. Its sources are the run's proposer, whose ``abilities`` say how it
delivers (one proposal at a time; ``batched`` requests a model decodes together; ``asynchronous``
replies that arrive on their own, taken at every step), and constant fitting (``FITTING_PROPOSERS``:
the seeds when a run starts, then promising programs). Every proposal, whatever its source, goes in
through ``_take``: stored, judged, reported back. The cluster loop (search/cluster) reuses the same
halves of judging (``screen`` before the sandbox, ``settle`` after) with evaluation overlapped.

Every candidate is one row in the run database, written as soon as the model has replied (status
``pending``), then completed with its verdict. A run killed at any point loses at most the
evaluation in flight, and ``--resume`` re-judges that stored reply instead of losing it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from importlib import metadata
from typing import Callable, Optional

from symdisc import rules
from symdisc.config import EvolveConfig

# Strategies whose runs fit constants (search/proposers/fit.py), and who decides when: the loop
# (whenever a program is due) or the proposer's own bandit. Both fit the seeds when a run starts.
FITTING_PROPOSERS = {"mutate": "loop", "rl": "loop", "hybrid": "proposer"}
from symdisc.errors import ConfigError, UsageError
from symdisc.search.programs import ProgramDatabase
from symdisc.search.prompting import PromptTexts, load_prompts
from symdisc.search.proposers import Proposal
from symdisc.store import FIDELITY, Store, held_elsewhere

Event = Callable[[str, dict], None]


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for dist in ("symdisc", "torch", "llama-cpp-python", "RestrictedPython"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


class Evolution:
    """One run of the loop. Build it with ``start`` or ``resume``; then call ``run``."""

    def __init__(self, store: Store, run_id: str, config: EvolveConfig, texts: PromptTexts, proposer, gate,
                 sandbox, on_event: Optional[Event] = None, elapsed_before_s: float = 0.0):
        self.store = store
        self.run_id = run_id
        self.config = config
        self.texts = texts
        self.proposer = proposer
        self.gate = gate
        self.sandbox = sandbox
        self.on_event = on_event or (lambda kind, data: None)
        self.db = ProgramDatabase()
        self.first_proposal_seq = 0
        self.elapsed_before_s = elapsed_before_s
        self.session_start = time.monotonic()
        self.stats = {"generated": 0, "tokens_out": 0, "gen_ms": 0.0}
        self.audit_report: Optional[dict] = None
        self._search: Optional[dict] = None  # the run's search state (runs.search_json), one part per source
        self.fitter = None  # constant fitting, a second source beside the proposer (FITTING_PROPOSERS)

    # -- construction --------------------------------------------------------------------------
    @staticmethod
    def _as_proposer(proposer, params_b: Optional[float]):
        """A text-generation backend (no declared abilities) stands for the llm proposer around it."""
        if getattr(proposer, "abilities", None) is None:
            from symdisc.search.proposers.llm import LLMProposer

            return LLMProposer(proposer, params_b)
        return proposer

    @classmethod
    def start(cls, store: Store, config: EvolveConfig, proposer, gate, sandbox, on_event: Optional[Event] = None,
              params_b: Optional[float] = None, parent_run: Optional[str] = None) -> "Evolution":
        config.validate()
        proposer = cls._as_proposer(proposer, params_b)
        texts = load_prompts(config.memory, max_buffers=config.max_buffers)
        record = dict(config.as_dict(), prompts=texts.as_dict())
        info = getattr(proposer, "info", {}) or {}
        run_id = store.create_run("evolve", record, model=info.get("model"), model_sha256=info.get("model_sha256"),
                                  backend=info.get("backend"), versions_json=_versions(), parent_run=parent_run)
        return cls(store, run_id, config, texts, proposer, gate, sandbox, on_event)

    @classmethod
    def resume(cls, store: Store, run_id: str, proposer, gate, sandbox, on_event: Optional[Event] = None,
               params_b: Optional[float] = None, overrides: Optional[dict] = None) -> "Evolution":
        run = store.get_run(run_id, kind="evolve")
        if run["kind"] != "evolve":
            raise UsageError(f"run {run['id']} is a {run['kind']} run, not an evolution")
        if run["status"] == "finished" and not {"candidates", "minutes"} & set(overrides or {}):
            raise UsageError(f"run {run['id']} is finished; raise its budget with --candidates or --minutes")
        if held_elsewhere(run):
            raise UsageError(f"run {run['id']} is still running (pid {run['pid']})")
        prompts = run["config"].get("prompts")
        config = EvolveConfig.resumed(run["config"], overrides).validate()
        texts = PromptTexts(**prompts) if prompts else load_prompts(config.memory, max_buffers=config.max_buffers)
        summary = run.get("summary") or {}
        evo = cls(store, run["id"], config, texts, cls._as_proposer(proposer, params_b), gate, sandbox, on_event,
                  elapsed_before_s=float(summary.get("elapsed_s", 0.0)))
        store.update_run(run["id"], status="running", pid=os.getpid(),
                         config_json=dict(config.as_dict(), prompts=texts.as_dict()))
        return evo

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        self.store.update_run(self.run_id, status="running", pid=os.getpid())
        self.on_event("start", {"run_id": self.run_id, "config": self.config})
        try:
            self._load()
            self.proposer.start(self)
            self._seed()
            self._finish_pending()
            self._start_fitting()
            self.first_proposal_seq = self.store.next_seq(self.run_id)
            self._propose_until_spent()
        except KeyboardInterrupt:
            self._close("interrupted")
            raise
        except BaseException:
            self._close("failed")
            raise
        return self._close("finished")

    def _propose_until_spent(self) -> None:
        """One candidate at a time: propose, then judge (the cluster loop overlaps the two)."""
        backend = self._batched_backend()
        if backend is not None:
            return self._propose_in_parallel(backend)
        while not self._budget_spent():
            self.step()

    # -- several requests in flight (--parallel N) ---------------------------------------------
    def _batched_backend(self):
        """The proposer's backend when it decodes several requests together (``submit``/``wait``)."""
        if self.config.parallel > 1 and self.proposer.abilities.batched:
            return self.proposer.backend
        return None

    def _propose_in_parallel(self, backend) -> None:
        """Keep ``config.parallel`` requests in the batched generator. Each request is built from the
        database as it stands when its slot frees up (the cluster loop's rule), and each reply is
        stored (pending) and judged as soon as it is back, while the others wait in the cache.
        Judging does not overlap decoding: on two cores a busy sandbox slows llama.cpp down more
        than the overlap gains. A run stopped here loses only the replies not yet back."""
        # With several --model, each draft goes to the model its bandit chose; each model decodes
        # its own batch, one after the other (two cores hold one decode at a time anyway).
        backends = [b for _, b, _ in getattr(self.proposer, "models", [])] or [backend]
        inflight: dict = {}  # (model index, ticket) -> (seq, draft)
        seq = self.store.next_seq(self.run_id)
        while True:
            while len(inflight) < self.config.parallel and self._room_for(len(inflight)):
                self.on_event("generating", {"seq": seq})
                draft = self.proposer.prepare(self, seq)
                index = getattr(draft, "model_index", 0)
                inflight[(index, backends[index].submit(draft.request))] = (seq, draft)
                seq += 1
            if not inflight:
                return
            for index in sorted({i for i, _ in inflight}):
                for ticket, generation in backends[index].wait():
                    got, draft = inflight.pop((index, ticket))
                    self._take(self.proposer.finish(draft, generation), got)

    def _room_for(self, coming: int) -> bool:
        """Budget for one more proposal, counting the ``coming`` ones still being generated."""
        c = self.config
        if c.candidates is not None and self.llm_candidates() + coming >= c.candidates:
            return False
        if c.minutes is not None and self.elapsed_s() >= c.minutes * 60:
            return False
        if c.evaluations is not None and self.store.evaluated_count(self.run_id) + coming >= c.evaluations:
            return False
        return True

    def _start_fitting(self) -> None:
        """Strategies that fit constants fit every seed first (the bar a run's own programs must clear)."""
        if self.config.proposer not in FITTING_PROPOSERS:
            return
        from symdisc.search.proposers.fit import FitSource

        self.fitter = FitSource()
        self.fitter.start(self)
        while not self._budget_spent():
            row = self.fitter.due(self, seeds_only=True)
            if row is None:
                break
            self._take(self.fitter.propose(self, self.store.next_seq(self.run_id), row))

    def proxy_score(self, code: str) -> Optional[float]:
        """The proxy fitness of a program (gate, then sandbox), None when it fails: what a fit maximises."""
        gated = self.gate.check(code, self.config.memory)
        if not gated.verdict.ok:
            return None
        answer = self.sandbox.evaluate(gated.normalized, **self.evaluation_args())
        return answer.get("fitness") if answer.get("ok") else None

    def _take(self, proposal: Optional[Proposal], seq: Optional[int] = None) -> Optional[dict]:
        """The one way in for a proposal from any source: store it (pending), judge it (a model's
        reply repaired first), and report the verdict back to the proposer."""
        if proposal is None:
            return None
        seq = self.store.next_seq(self.run_id) if seq is None else seq
        candidate_id = self._store_proposal(seq, proposal)
        row = self.judge(candidate_id, proposal.text, repair=proposal.origin == "llm")
        self.proposer.observe(proposal.genome, row)
        return row

    def step(self) -> Optional[dict]:
        """One round of the scheduler: the replies an asynchronous source has ready, then a fit when
        one is due (where the loop schedules fitting), then one proposal; each stored and judged."""
        if self.proposer.abilities.asynchronous:
            for proposal in self.proposer.poll(self):
                self._take(proposal)
                if self._budget_spent():
                    return None
        seq = self.store.next_seq(self.run_id)
        self.on_event("generating", {"seq": seq})
        if self.fitter is not None and FITTING_PROPOSERS.get(self.config.proposer) == "loop" \
                and self.fitter.due(self) is not None:
            row = self._take(self.fitter.propose(self, seq))
            if row is not None:
                return row
            seq = self.store.next_seq(self.run_id)
        return self._take(self.proposer.propose(self, seq), seq)

    def _store_proposal(self, seq: int, proposal: Proposal) -> int:
        """The reply is stored (status pending) before it is judged, so a killed run can re-judge it."""
        self.stats["generated"] += 1
        self.stats["tokens_out"] += proposal.tokens_out
        self.stats["gen_ms"] += proposal.gen_ms
        return self.store.add_candidate(
            self.run_id, seq, proposal.origin, parent_id=proposal.parent_id, prompt=proposal.prompt,
            response=proposal.text, tokens_in=proposal.tokens_in, tokens_out=proposal.tokens_out,
            gen_ms=proposal.gen_ms, genome_json=json.dumps(proposal.genome) if proposal.genome else None,
            **(proposal.meta or {}))  # operator, model, island, temperature, other_id

    def judge(self, candidate_id: int, reply: str, always_heldout: bool = False, repair: bool = False) -> dict:
        """Gate, deduplicate, evaluate and record one candidate; returns its final row. ``repair``: a
        model's reply, mechanically repaired before the gate (judge/repair.py)."""
        update, code = self.screen(candidate_id, reply, repair)
        if code is None:
            return self._record(candidate_id, update)
        answer = self.sandbox.evaluate(code, **self.evaluation_args())
        return self.settle(candidate_id, update, answer, code, always_heldout)

    def screen(self, candidate_id: int, reply: str, repair: bool = False) -> tuple[dict, Optional[str]]:
        """The half of judging before the sandbox: gate and deduplicate by program text.

        Returns the row update so far and the normalized code to evaluate, or None for the code when
        the verdict is already final (rejected, or a repeat). Noting the hash here, before the
        evaluation, makes a repeat that arrives while the first copy is being evaluated a duplicate.
        """
        t0 = time.perf_counter()
        gated = self.gate.check(reply, self.config.memory, repair=repair)
        gate_ms = (time.perf_counter() - t0) * 1e3
        v = gated.verdict
        update = dict(code=gated.code, normalized=gated.normalized, ast_hash=gated.ast_hash, gate_ms=gate_ms)
        if gated.repairs:
            update["repairs"] = json.dumps(gated.repairs)
        if not v.ok:
            update.update(status="rejected", stage="gate", reason=v.reason, message=v.message, line=v.line)
            return update, None
        update["ast_hash"] = gated.ast_hash = live_hash(gated.normalized, gated.ast_hash, self.config.memory)
        earlier = self.db.known_hash(gated.ast_hash)
        if earlier is not None:
            update.update(status="duplicate", stage="gate", reason="repeat", duplicate_of=earlier,
                          message=f"the same program as candidate {earlier}; change the idea, not the names")
            return update, None
        self.db.note_hash(gated.ast_hash, candidate_id)
        return update, gated.normalized

    def evaluation_args(self) -> dict:
        """The sandbox request of the proxy stage, after the code (the same for every candidate)."""
        args = dict(memory=self.config.memory, stages=("probe", "proxy"), proxy=asdict(self.config.proxy),
                    timeout_s=self.config.sandbox_timeout_s)
        if self.config.max_buffers is not None:
            args["max_buffers"] = self.config.max_buffers
        return args

    def settle(self, candidate_id: int, update: dict, answer: dict, code: str, always_heldout: bool = False) -> dict:
        """The half of judging after the sandbox: store its answer, catch behavioural twins, run the
        funnel, record. ``update`` and ``code`` come from ``screen``."""
        ms = answer.get("ms", {})
        update["eval_ms"] = ms.get("sandbox")
        self._store_evaluations(candidate_id, answer)
        if not answer.get("ok"):
            update.update(status="failed", stage=answer.get("stage", "sandbox"), reason=answer.get("reason") or "crash",
                          message=answer.get("message"), line=answer.get("line"))
            return self._record(candidate_id, update)
        proxy = answer.get("proxy") or {}
        update.update(status="evaluated", stage="proxy", fitness=answer.get("fitness"), best_lr=proxy.get("best_lr"),
                      fingerprint=answer.get("fingerprint"), state_scalars=answer.get("state_scalars"),
                      state_bytes=answer.get("state_bytes"), fidelity=FIDELITY["proxy"])
        if answer.get("fitness") is not None:
            score, band = self.config.cascade.combine({"proxy": answer["fitness"]})
            update.update(rank_score=score, rank_band=band)
        twin = self.db.known_behaviour(answer.get("fingerprint"))
        if twin is not None:
            update.update(status="duplicate", reason="repeat", duplicate_of=twin,
                          message=f"behaves exactly like candidate {twin}; try a different idea")
        else:
            self._cascade(candidate_id, code, update, always_heldout)
        return self._record(candidate_id, update)

    # -- the cascade (successive halving over stages ordered by cost) ----------------------------
    def _cascade(self, candidate_id: int, code: str, update: dict, always: bool) -> None:
        """Promote a candidate stage by stage while it scores within the stage's margin of that
        stage's best so far; record its highest fidelity and the rank score there (the mean of its
        standardized scores at every stage reached: CascadeConfig.combine) with its noise band."""
        cascade = self.config.cascade
        if not self._promote(update["fitness"], "proxy", cascade.proxy_margin, always):
            return
        detail = self._real_stage(candidate_id, code, "heldout", self._stage_spec("heldout"), update)
        if detail is None:
            return
        update["heldout"] = detail["fitness"]
        if detail.get("failed"):
            return
        reached = {"proxy": update["fitness"], "heldout": detail["fitness"]}
        score, band = cascade.combine(reached)
        update.update(fidelity=FIDELITY["heldout"], rank_score=score, rank_band=band)
        if not cascade.long or not self._promote(detail["fitness"], "heldout", cascade.heldout_margin, always):
            return
        long = self._real_stage(candidate_id, code, "long", self._stage_spec("long", detail), update)
        if long is None or long.get("failed"):
            return
        score, band = cascade.combine(dict(reached, long=long["fitness"]))
        update.update(fidelity=FIDELITY["long"], rank_score=score, rank_band=band)

    def _stage_spec(self, stage: str, lower: Optional[dict] = None) -> dict:
        """A real-data stage's request: the built-in stage's config, or the run's task files; the long
        stage searches the half-decades around the lower stage's best lr (per task on task files)."""
        from symdisc.judge.realdata import neighbour_lrs

        if self.config.tasks:
            from symdisc.tasks import stage_spec

            lrs = {name: list(neighbour_lrs(d["best_lr"])) for name, d in (lower or {}).get("tasks", {}).items()}
            return stage_spec(self.config.tasks, stage, lrs, self.config.task_fidelities)
        if stage == "heldout":
            return asdict(self.config.heldout)
        return dict(self.config.cascade.long, lrs_override=list(neighbour_lrs(lower["best_lr"])))

    def _standardise(self, stage: str, detail: dict) -> None:
        """On task files: the stage's fitness is the mean over tasks of the standardized score
        (symdisc.tasks.norm_of, from the run's seed rules); 0.0 while the seeds are being scored."""
        from symdisc.tasks import standardised

        raw = {name: d["fitness"] for name, d in detail["tasks"].items()}
        norms = {name: tuple(v) for name, v in (self.config.task_norms.get(stage) or {}).items()}
        z = standardised(raw, norms)
        detail["fitness"] = 0.0 if z is None else z
        detail["raw"] = raw
        detail["best_lr"] = next(iter(detail["tasks"].values()))["best_lr"]

    def _real_data(self) -> bool:
        """Whether this run's sandbox serves real-data stages (built-in data, or task files)."""
        return bool(getattr(self.sandbox, "heldout", False) or getattr(self.sandbox, "tasks", None))

    def _promote(self, score: Optional[float], stage: str, margin: float, always: bool) -> bool:
        """Successive halving: on to the next stage only within ``margin`` of this stage's best."""
        if not self.config.funnel or not self._real_data() or score is None:
            return False
        best = self.db.best_at(stage)
        return always or best is None or score >= best - margin

    def _real_stage(self, candidate_id: int, code: str, stage: str, spec: dict, update: dict) -> Optional[dict]:
        """One real-data stage in the worker; its detail, {"fitness": 0, "failed": True} when the
        candidate failed it, or None when the stage could not run (not the candidate's fault)."""
        on_tasks = "tasks" in spec
        timeout = self.config.task_timeout_s if on_tasks else self.config.sandbox_timeout_s * 4
        answer = self.sandbox.evaluate(code, self.config.memory, stages=(stage,), timeout_s=timeout,
                                       cascade={stage: spec})
        ms = answer.get("ms", {})
        if ms.get("sandbox") is not None:
            update["eval_ms"] = (update.get("eval_ms") or 0.0) + ms["sandbox"]
        detail = answer.get(stage)
        if not answer.get("ok") or not detail:
            self.store.add_evaluation(candidate_id, stage, False, reason=answer.get("reason"),
                                      message=answer.get("message"), ms=ms.get(stage))
            # On task files a stage past its limits (wall clock, CPU time, memory) fails too: the
            # limits are the user's, the same for every candidate.
            limits = on_tasks and answer.get("reason") in ("timeout", "cpu_time", "memory")
            if (answer.get("stage") == stage or limits) and answer.get("reason") != "crash":
                return {"fitness": 0.0, "failed": True, "reason": answer.get("reason"),
                        "message": answer.get("message")}
            return None
        if on_tasks:
            self._standardise(stage, detail)
        for i, acc in enumerate(detail.get("per_seed", [])):
            self.store.add_evaluation(candidate_id, stage, True, fitness=acc, seed=int(spec.get("seed_base", 7000)) + i)
        self.store.add_evaluation(candidate_id, stage, True, fitness=detail["fitness"], ms=ms.get(stage), detail=detail)
        return detail

    def audit(self) -> Optional[dict]:
        """Score the run's top few on the audit task (never selected on) and report its rank
        correlation with the run's fitness. Stored on the candidates (``audit``) and in the summary."""
        cascade = self.config.cascade
        if not cascade.audit or not self.config.funnel or not getattr(self.sandbox, "heldout", False) \
                or self.config.tasks:
            return None
        from symdisc.search.funnel import spearman

        top = self.db.ranked()[: cascade.audit_top]
        scored = []
        for place, row in enumerate(top):
            code = row.get("normalized") or row.get("code")
            if not code:
                continue
            if row.get("audit") is None:
                from symdisc.judge.realdata import neighbour_lrs

                spec = dict(cascade.audit, lrs_override=list(neighbour_lrs(row.get("best_lr") or 1e-2)))
                detail = self._real_stage(row["id"], code, "audit", spec, {})
                if detail is None:
                    return None  # the audit data set is missing here
                self.store.update_candidate(row["id"], audit=detail["fitness"])
                row["audit"] = detail["fitness"]
            scored.append((-place, row["audit"], row["id"]))
        report = {"n": len(scored), "ids": [s[2] for s in scored], "audit": [s[1] for s in scored],
                  "spearman": spearman([s[0] for s in scored], [s[1] for s in scored])}
        self.audit_report = report
        return report

    # -- helpers -------------------------------------------------------------------------------
    def search_state(self) -> dict:
        """The run's stored search state (``runs.search_json``): one part per source of programs."""
        if self._search is None:
            self._search = dict(self.store.get_run(self.run_id).get("search") or {})
        return self._search

    def save_search_state(self, part: str, state: dict) -> None:
        self.search_state()[part] = state
        self.store.update_run(self.run_id, search_json=self._search)

    def _record(self, candidate_id: int, update: dict) -> dict:
        self.store.update_candidate(candidate_id, **update)
        row = self.store.get_candidate(candidate_id)
        if row["status"] == "evaluated":
            self.db.add(row)
        self._save_summary()
        self.on_event("candidate", {"row": row, "summary": self.summary()})
        return row

    def _store_evaluations(self, candidate_id: int, answer: dict) -> None:
        ms = answer.get("ms", {})
        if "probe" in answer or answer.get("stage") == "probe":
            ok = "probe" in answer
            self.store.add_evaluation(candidate_id, "probe", ok, ms=ms.get("probe"), detail=answer.get("probe"),
                                      reason=None if ok else answer.get("reason"),
                                      message=None if ok else answer.get("message"))
        proxy = answer.get("proxy")
        if proxy:
            for i, acc in enumerate(proxy.get("per_seed", [])):
                self.store.add_evaluation(candidate_id, "proxy", True, fitness=acc, seed=self.config.proxy.task_seed + i)
            self.store.add_evaluation(candidate_id, "proxy", True, fitness=proxy.get("fitness"), ms=ms.get("proxy"),
                                      detail=proxy)
        elif answer.get("stage") == "proxy":
            self.store.add_evaluation(candidate_id, "proxy", False, reason=answer.get("reason"),
                                      message=answer.get("message"), ms=ms.get("proxy"))

    def _load(self) -> None:
        for row in self.store.candidates(self.run_id):
            if row["status"] == "evaluated":
                self.db.add(row)
            elif row["ast_hash"] and row["status"] != "rejected":
                self.db.note_hash(row["ast_hash"], row["id"])

    def _seed(self) -> None:
        seeded = {row["name"] for row in self.store.candidates(self.run_id) if row["origin"] == "seed"}
        for name in self.config.seed_rules or rules.SEEDS[self.config.memory]:
            if name in seeded:
                continue
            code = rules.source(name)
            seq = self.store.next_seq(self.run_id)
            candidate_id = self.store.add_candidate(self.run_id, seq, "seed", name=name, response=code)
            row = self.judge(candidate_id, code, always_heldout=True)
            if row["status"] != "evaluated":
                raise ConfigError(f"built-in seed {name} failed: {row['reason']}: {row['message']}")
        if self.config.tasks and self.config.funnel and self._real_data() and not self.config.task_norms:
            self._settle_task_norms()

    def _settle_task_norms(self) -> None:
        """Standardization on task files: each stage's (centre, scale) per task from the seed rules'
        raw scores (symdisc.tasks.norm_of), stored in the run config; then the seeds' own stage
        scores and rank scores are recomputed with them. A task no seed rule could score is an error."""
        from symdisc.tasks import norm_of, standardised

        seeds = [r for r in self.store.candidates(self.run_id, ["evaluated"]) if r["origin"] == "seed"]
        raw: dict = {}  # candidate id -> stage -> {task: score}
        failures = []
        for row in seeds:
            for ev in self.store.evaluations(row["id"]):
                detail = ev.get("detail") or {}
                if ev["stage"] in ("heldout", "long") and ev["ok"] and detail.get("tasks"):
                    raw.setdefault(row["id"], {})[ev["stage"]] = {n: d["fitness"] for n, d in detail["tasks"].items()}
                elif ev["stage"] in ("heldout", "long") and not ev["ok"]:
                    failures.append(f"{row['name']}: {ev.get('reason')}: {ev.get('message')}")
        if not any("heldout" in r for r in raw.values()):
            raise ConfigError("no seed rule could be scored on the task files; " + (failures[0] if failures else
                              "the held-out stage did not run"))
        norms: dict = {}
        for stage in ("heldout", "long"):
            for task in self.config.tasks:
                scores = [r[stage][task["name"]] for r in raw.values() if stage in r]
                if scores:
                    norms.setdefault(stage, {})[task["name"]] = list(norm_of(scores))
        self.config.task_norms = norms
        self.store.update_run(self.run_id, config_json=dict(self.config.as_dict(), prompts=self.texts.as_dict()))
        for row in seeds:
            stages = raw.get(row["id"], {})
            if "heldout" not in stages:
                continue
            fields: dict = {"heldout": standardised(stages["heldout"], {k: tuple(v) for k, v in norms["heldout"].items()})}
            reached = {"proxy": row["fitness"], "heldout": fields["heldout"]}
            if "long" in stages and "long" in norms:
                reached["long"] = standardised(stages["long"], {k: tuple(v) for k, v in norms["long"].items()})
            fields["rank_score"], fields["rank_band"] = self.config.cascade.combine(reached)
            self.store.update_candidate(row["id"], **fields)
            self.db.add(self.store.get_candidate(row["id"]))

    def _finish_pending(self) -> None:
        """Replies stored by a run that was killed before their verdict: judge them now."""
        for row in self.store.candidates(self.run_id, ["pending"]):
            self.on_event("resumed", {"seq": row["seq"]})
            judged = self.judge(row["id"], row["response"] or "", repair=row["origin"] == "llm")
            self.proposer.observe(json.loads(row["genome_json"]) if row.get("genome_json") else None, judged)

    def llm_candidates(self) -> int:
        return sum(self.store.status_counts(self.run_id, proposed_only=True).values())

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.monotonic() - self.session_start)

    def _budget_spent(self) -> bool:
        if self.config.candidates is not None and self.llm_candidates() >= self.config.candidates:
            return True
        if self.config.minutes is not None and self.elapsed_s() >= self.config.minutes * 60:
            return True
        if self.config.evaluations is not None and self.store.evaluated_count(self.run_id) >= self.config.evaluations:
            return True
        return False

    def summary(self) -> dict:
        counts = self.store.status_counts(self.run_id, proposed_only=True)
        best = self.db.best()
        gen_s = self.stats["gen_ms"] / 1e3
        elapsed = self.elapsed_s()
        n = sum(counts.values())
        return {
            "candidates": n,
            "statuses": counts,
            "passed_gate": n - counts.get("rejected", 0),
            "best_fitness": best["fitness"] if best else None,
            "best_id": best["id"] if best else None,
            "elapsed_s": round(elapsed, 2),
            "tokens_per_s": round(self.stats["tokens_out"] / gen_s, 2) if gen_s > 0 else None,
            "candidates_per_min": round(self.stats["generated"] / (time.monotonic() - self.session_start) * 60, 2)
            if self.stats["generated"] else None,
            "reasons": self.store.reason_counts(self.run_id),
            "best_fidelity": best.get("fidelity") if best else None,
            "best_rank_score": best.get("rank_score") if best else None,
            "audit": self.audit_report,
            "repairs": self.store.repair_counts(self.run_id),
        }

    def _save_summary(self) -> None:
        self.store.update_run(self.run_id, summary_json=self.summary())

    def _close(self, status: str) -> dict:
        if self.proposer.abilities.asynchronous:
            self.proposer.stop()
        if status == "finished":
            try:
                self.audit()
            except Exception as exc:  # the audit only reports; it must never fail a finished run
                self.on_event("audit_failed", {"error": str(exc)})
        summary = self.summary()
        try:
            self.store.update_run(self.run_id, status=status, summary_json=summary)
        except Exception:
            pass  # the database may be the thing that failed; the run stays resumable either way
        self.on_event("end", {"status": status, "summary": summary})
        return summary


def live_hash(code: Optional[str], gate_hash: Optional[str], memory: str) -> Optional[str]:
    """The hash of a gated program's live part (statements that never reach the return dropped),
    so that two programs differing only in dead code are one program. The code has passed the gate,
    so parsing it here is safe."""
    from symdisc.judge.gate import check_code
    from symdisc.search.deadcode import prune

    if not code:
        return gate_hash
    try:
        pruned = prune(code)
    except (SyntaxError, ValueError, RecursionError):
        return gate_hash
    if pruned == code:
        return gate_hash
    gated = check_code(pruned, memory)
    return gated.ast_hash if gated.verdict.ok else gate_hash
