"""Export a candidate as one Python file that needs only torch: a ``torch.optim.Optimizer``.

Like lion-pytorch, the file keeps the math apart from the bookkeeping: the discovered ``update``
function stays exactly as the sandbox ran it, and the Optimizer class only loops over parameters,
counts steps and keeps each parameter's rule state in ``self.state[p]["rule"]`` so that
``state_dict()``/``load_state_dict()`` and lr schedulers work.
"""

from __future__ import annotations

import re
from typing import Optional

_TEMPLATE = '''"""{title}

Exported by symdisc {version} from {origin}.
Proxy fitness {fitness}; memory class {memory}; proxy learning rate {lr}.
Needs only torch. The update rule is the function `update`; the Optimizer class is bookkeeping.
"""

import math

import torch
from torch.optim import Optimizer

# ---- the discovered update rule: returns the step to subtract from the parameter ----------------

{code}

# ---- bookkeeping --------------------------------------------------------------------------------


class {class_name}(Optimizer):
    """torch.optim.Optimizer wrapping `update`. Rule state lives in self.state[p]["rule"]."""

    def __init__(self, params, lr={lr}):
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate: {{lr}}")
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["rule"] = {{}}
                state["step"] += 1
                p.sub_(update(p.grad, p, state["rule"], group["lr"], state["step"]))
        return loss
'''


def _class_name(name: Optional[str]) -> str:
    if not name:
        return "DiscoveredOptimizer"
    parts = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(p[:1].upper() + p[1:] for p in parts if p) or "DiscoveredOptimizer"


def render(candidate: dict, memory: str, version: str) -> str:
    """The exported file's text for a candidates row (it must have passed the gate)."""
    code = (candidate.get("normalized") or candidate.get("code") or "").strip()
    if not code:
        raise ValueError("the candidate has no code")
    # Keep module docstrings out of the middle of the file: the header says where it came from.
    code = re.sub(r'^\s*(?:"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\')\s*\n', "", code, count=1).strip()
    fitness = candidate.get("fitness")
    lr = candidate.get("best_lr") or 1e-3
    title = f"{_class_name(candidate.get('name'))}: an optimizer discovered by symdisc"
    origin = f"run {candidate.get('run_id')}, candidate {candidate.get('id')}"
    return _TEMPLATE.format(title=title, version=version, origin=origin,
                            fitness=f"{fitness:.4f}" if fitness is not None else "n/a", memory=memory,
                            lr=repr(float(lr)), code=code, class_name=_class_name(candidate.get("name")))
