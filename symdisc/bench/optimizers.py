"""Optimizers that `symdisc bench` can compare: torch's own, contract-form rules, evo-genome.

Each built-in is written once: torch's optimizers where torch has them, the rule files in
``symdisc/rules/`` (through the same exporter users get) for the rest, and the evo-optimizer genome
below. A factory returns ``make(params, lr, total_steps) -> Optimizer``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.optim import Optimizer

from symdisc import __version__, rules
from symdisc.errors import UsageError
from symdisc.judge.training import measured_memory_class, state_bytes  # noqa: F401  (re-exported)
from symdisc.search.genome import EVO_OPTIMIZER_LR, evo_optimizer_genome


@dataclass
class OptimizerSpec:
    name: str
    default_lr: float
    make: Callable  # (params, lr, total_steps) -> Optimizer
    description: str
    memory_class: Optional[str] = None  # declared; the bench also measures the live state
    full_batch: bool = False  # steps with a closure (line search): only on a whole-training-set batch


def rule_optimizer_class(code: str, name: str, memory: str = "scalar") -> type:
    """Compile a contract-form rule into the exported Optimizer class, in this process.

    Only for the built-in rules (symdisc/rules/) and for gated rules under ``--unsandboxed``: the
    exported optimizer runs the rule unsandboxed, as the user's training script will. Rules from a
    model train in the sandbox worker instead (``judge.sandbox.TrainingSandbox``).
    """
    from symdisc.export import render

    text = render({"name": name, "normalized": code, "id": None, "run_id": None}, memory, __version__)
    namespace: dict = {"__name__": f"symdisc_rule_{name.replace('-', '_')}"}
    exec(compile(text, f"<{name}>", "exec"), namespace)
    classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, Optimizer) and v is not Optimizer]
    return classes[0]


class EvoGenome(Optimizer):
    """The evo-optimizer project's published best genome, as that project defines its terms.

    step = lr_t * sum_k alpha_k * T_k with T in {SIGN_GRAD: sign(g), ADAM_TERM: m / (sqrt(v) + eps)},
    m and v EMAs without bias correction, decoupled weight decay, linear warmup then cosine decay
    over ``total_steps``.
    """

    GENOME = evo_optimizer_genome()
    LR = EVO_OPTIMIZER_LR

    def __init__(self, params, lr: float = LR, total_steps: int = 1000):
        g = self.GENOME
        super().__init__(params, dict(lr=lr, betas=(g.beta1, g.beta2), eps=10 ** g.eps_log10,
                                      weight_decay=10 ** g.wd_log10))
        self.total_steps = max(1, total_steps)
        self.sign_weight = sum(a for t, a in zip(g.terms, g.alphas) if t == "SIGN_GRAD")
        self.adam_weight = sum(a for t, a in zip(g.terms, g.alphas) if t == "ADAM_TERM")

    def _schedule(self, step: int) -> float:
        warmup = min(1.0, step / self.GENOME.warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        return warmup * cosine

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                lr_t = group["lr"] * self._schedule(state["step"])
                g = p.grad
                state["m"].mul_(beta1).add_(g, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                direction = self.sign_weight * torch.sign(g) + self.adam_weight * state["m"] / (state["v"].sqrt() + group["eps"])
                p.mul_(1 - lr_t * group["weight_decay"])
                p.sub_(lr_t * direction)
        return loss


def _torch(cls, **kw):
    return lambda params, lr, total_steps: cls(params, lr=lr, **kw)


def _rule(name: str, memory: str):
    def make(params, lr, total_steps):
        return rule_optimizer_class(rules.source(name), name, memory)(params, lr=lr)

    return make


# Default learning rates: each optimizer's usual default for a small CNN (torch's own default where
# it has one). `--tune N` replaces them with the same Optuna budget for every optimizer.
BUILTINS: dict[str, OptimizerSpec] = {s.name: s for s in [
    OptimizerSpec("sgd", 0.05, _torch(torch.optim.SGD), "SGD", "scalar"),
    OptimizerSpec("momentum", 0.01, _torch(torch.optim.SGD, momentum=0.9), "SGD, momentum 0.9", "buffers"),
    OptimizerSpec("nesterov", 0.01, _torch(torch.optim.SGD, momentum=0.9, nesterov=True), "SGD, Nesterov 0.9", "buffers"),
    OptimizerSpec("adagrad", 0.01, _torch(torch.optim.Adagrad), "Adagrad", "buffers"),
    OptimizerSpec("rmsprop", 1e-3, _torch(torch.optim.RMSprop), "RMSprop", "buffers"),
    OptimizerSpec("adam", 1e-3, _torch(torch.optim.Adam), "Adam", "buffers"),
    OptimizerSpec("adamw", 1e-3, _torch(torch.optim.AdamW, weight_decay=0.01), "AdamW, weight decay 0.01", "buffers"),
    OptimizerSpec("lion", 1e-4, _rule("lion", "buffers"), "Lion (symdisc/rules/lion.py)", "buffers"),
    OptimizerSpec("sign-sgd", 1e-3, _rule("sign_sgd", "scalar"), "signSGD (symdisc/rules/sign_sgd.py)", "scalar"),
    OptimizerSpec("robust-zero-state", 1e-3, _rule("robust_zero_state", "scalar"),
                  "the original experiment's rule (symdisc/rules/robust_zero_state.py)", "scalar"),
    OptimizerSpec("evo-genome", EvoGenome.LR, lambda params, lr, total_steps: EvoGenome(params, lr, total_steps),
                  "evo-optimizer's published genome", "buffers"),
    # Normalised and matrix-shaped rules (symdisc/rules/, whose docstrings cite their sources). The
    # step of normalized-sgd has norm lr per tensor, of lars norm lr * ||w||; orthogonal-sgd and muon
    # step in units of spectral norm (Muon's default 0.02); sinkhorn-sgd, adam-mini-v, signum and
    # sophia move each coordinate by about lr, like signSGD and Adam.
    OptimizerSpec("normalized-sgd", 0.1, _rule("normalized_sgd", "scalar"),
                  "normalized SGD, g / ||g|| per tensor (symdisc/rules/normalized_sgd.py)", "scalar"),
    OptimizerSpec("lars", 0.01, _rule("lars", "scalar"),
                  "LARS trust ratio ||w|| / ||g||, no momentum (symdisc/rules/lars.py)", "scalar"),
    OptimizerSpec("adam-mini-v", 1e-3, _rule("adam_mini_v", "scalar"),
                  "one running mean of mean(g^2) per tensor, no first moment (symdisc/rules/adam_mini_v.py)", "scalar"),
    OptimizerSpec("orthogonal-sgd", 0.02, _rule("orthogonal_sgd", "scalar"),
                  "stateless Newton-Schulz orthogonalisation (symdisc/rules/orthogonal_sgd.py)", "scalar"),
    OptimizerSpec("sinkhorn-sgd", 1e-3, _rule("sinkhorn_sgd", "scalar"),
                  "SinkGD, alternating row and column normalisation (symdisc/rules/sinkhorn_sgd.py)", "scalar"),
    OptimizerSpec("signum", 1e-3, _rule("signum", "buffers"), "Signum, sign of momentum 0.9 (symdisc/rules/signum.py)",
                  "buffers"),
    OptimizerSpec("muon", 0.02, _rule("muon", "buffers"),
                  "Muon on matrices, AdamW on the rest (symdisc/rules/muon.py)", "buffers"),
    OptimizerSpec("sophia", 5e-4, _rule("sophia", "buffers"),
                  "Sophia's clipped step, squared-gradient Hessian estimate (symdisc/rules/sophia.py)", "buffers"),
    # A second-order reference: torch's L-BFGS with a strong-Wolfe line search re-evaluates the loss
    # inside each step, so it needs a closure and the whole training set as its batch.
    OptimizerSpec("lbfgs", 1.0, _torch(torch.optim.LBFGS, max_iter=20, history_size=100, line_search_fn="strong_wolfe"),
                  "L-BFGS (torch), strong-Wolfe line search, 20 iterations per step; full batch", "buffers",
                  full_batch=True),
]}


def builtin(name: str) -> OptimizerSpec:
    try:
        return BUILTINS[name]
    except KeyError:
        raise UsageError(f"unknown optimizer {name!r}; built-ins: {', '.join(BUILTINS)}") from None
