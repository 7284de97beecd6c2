"""Replays the raw replies logged by an earlier run, in order, so a run can be re-scored (new gate,
new proxy tasks) without a model."""

from __future__ import annotations

from symdisc.errors import BackendError
from symdisc.store import Store
from symdisc.llm import Generation, Request


class ReplayBackend:
    name = "replay"
    cpus, slots, remote = 0.0, 1, False

    def __init__(self, store: Store, run_id: str):
        run_id = store.resolve_run_id(run_id)
        rows = [c for c in store.candidates(run_id) if c["origin"] != "seed" and c["response"] is not None]
        if not rows:
            raise BackendError(f"run {run_id} has no logged model replies to replay")
        self.replies = [(c["response"], c["tokens_in"] or 0, c["tokens_out"] or 0) for c in rows]
        self.position = 0
        self.info = {"backend": "replay", "model": f"replay:{run_id}", "model_sha256": None}

    def __len__(self) -> int:
        return len(self.replies)

    def generate(self, request: Request) -> Generation:
        if self.position >= len(self.replies):
            raise BackendError(f"the replayed run has only {len(self.replies)} replies")
        text, tokens_in, tokens_out = self.replies[self.position]
        self.position += 1
        return Generation(text=text, tokens_in=tokens_in, tokens_out=tokens_out, finish_reason="replay")

    def close(self) -> None:
        pass
