"""Optimizer genomes (the evo-optimizer project's search space), compiled to contract candidates.

A genome is a list of primitive terms with weights plus scalars and flags; ``to_source`` writes it
as an ordinary ``update`` function, so genomes pass through the same gate, sandbox, probes and
proxy as a language model's code, and export the same way.

The absolute learning rate is not part of the genome here: the harness supplies ``lr`` (the proxy
tries a grid, the bench tunes it), so the genome carries a relative gain ``10**gain_log10``.
Cosine decay runs over ``DECAY_STEPS`` (evo-optimizer's 1,000-step budget).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace

from symdisc.contract import SCALAR

TERMS = ("GRAD", "MOMENTUM", "RMS_NORM", "ADAM_TERM", "SIGN_GRAD", "SQRT_GRAD", "NESTEROV")
NEEDS_M = {"MOMENTUM", "ADAM_TERM", "NESTEROV"}
NEEDS_V = {"RMS_NORM", "ADAM_TERM"}
SCALAR_TERMS = ("GRAD", "SIGN_GRAD", "SQRT_GRAD")  # no per-parameter buffers
DECAY_STEPS = 1000
MAX_TERMS = 4

# Ranges, shared by random sampling, mutation and the TPE search space.
RANGES = {
    "alpha": (0.05, 3.0), "gain_log10": (-1.0, 1.0), "eps_log10": (-10.0, -4.0), "wd_log10": (-6.0, -2.0),
    "beta1": (0.5, 0.99), "beta2": (0.8, 0.9999), "clip_value": (0.1, 10.0), "warmup_steps": (1, 200),
}


@dataclass
class Genome:
    terms: list = field(default_factory=lambda: ["GRAD"])
    alphas: list = field(default_factory=lambda: [1.0])
    gain_log10: float = 0.0
    eps_log10: float = -8.0
    wd_log10: float = -4.0
    beta1: float = 0.9
    beta2: float = 0.999
    use_wd: bool = False
    bias_correction: bool = False
    clip: bool = False
    clip_value: float = 1.0
    warmup: bool = False
    warmup_steps: int = 100
    cosine: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Genome":
        return cls(**data)


def _f(x: float) -> str:
    return f"{x:.6g}"


def to_source(g: Genome) -> str:
    """The genome as a contract candidate (readable: one line per term)."""
    terms = list(g.terms)
    uses_m = any(t in NEEDS_M for t in terms)
    uses_v = any(t in NEEDS_V for t in terms)
    eps = _f(10 ** g.eps_log10)
    lines = ["def update(grad, param, state, lr, t):"]
    lines.append(f"    g = torch.clamp(grad, -{_f(g.clip_value)}, {_f(g.clip_value)})" if g.clip else "    g = grad")
    if uses_m:
        lines.append(f"    m = {_f(g.beta1)} * state.get('m', torch.zeros_like(param)) + {_f(1 - g.beta1)} * g")
        lines.append("    state['m'] = m")
    if uses_v:
        lines.append(f"    v = {_f(g.beta2)} * state.get('v', torch.zeros_like(param)) + {_f(1 - g.beta2)} * g * g")
        lines.append("    state['v'] = v")
    m_hat, v_hat = "m", "v"
    if g.bias_correction and uses_m:
        lines.append(f"    m_hat = m / (1 - {_f(g.beta1)} ** t)")
        m_hat = "m_hat"
    if g.bias_correction and uses_v:
        lines.append(f"    v_hat = v / (1 - {_f(g.beta2)} ** t)")
        v_hat = "v_hat"
    expressions = {
        "GRAD": "g",
        "MOMENTUM": m_hat,
        "RMS_NORM": f"g / (torch.sqrt({v_hat}) + {eps})",
        "ADAM_TERM": f"{m_hat} / (torch.sqrt({v_hat}) + {eps})",
        "SIGN_GRAD": "torch.sign(g)",
        "SQRT_GRAD": f"g / (torch.abs(g) + {eps})",
        "NESTEROV": f"{_f(g.beta1)} * {m_hat} + g",
    }
    parts = [f"{_f(a)} * {expressions[t]}" for t, a in zip(terms, g.alphas)]
    lines.append("    d = " + " + ".join(parts))
    scale = [_f(10 ** g.gain_log10)]
    if g.warmup:
        scale.append(f"min(1.0, t / {int(g.warmup_steps)})")
    if g.cosine:
        scale.append(f"0.5 * (1 + math.cos(math.pi * min(t, {DECAY_STEPS}) / {DECAY_STEPS}))")
    step = "d"
    if g.use_wd:
        step = f"(d + {_f(10 ** g.wd_log10)} * param)"
    lines.append(f"    return lr * {' * '.join(scale)} * {step}")
    return "\n".join(lines) + "\n"


# -- sampling and variation ---------------------------------------------------------------------------
def random_genome(rng: random.Random, memory: str) -> Genome:
    allowed = SCALAR_TERMS if memory == SCALAR else TERMS
    n = rng.randint(1, MAX_TERMS)
    lo, hi = RANGES["alpha"]
    return Genome(
        terms=[rng.choice(allowed) for _ in range(n)],
        alphas=[round(rng.uniform(lo, hi), 4) for _ in range(n)],
        gain_log10=rng.uniform(*RANGES["gain_log10"]), eps_log10=rng.uniform(*RANGES["eps_log10"]),
        wd_log10=rng.uniform(*RANGES["wd_log10"]), beta1=rng.uniform(*RANGES["beta1"]),
        beta2=rng.uniform(*RANGES["beta2"]), use_wd=rng.random() < 0.5, bias_correction=rng.random() < 0.5,
        clip=rng.random() < 0.3, clip_value=rng.uniform(*RANGES["clip_value"]), warmup=rng.random() < 0.3,
        warmup_steps=rng.randint(*RANGES["warmup_steps"]), cosine=rng.random() < 0.3)


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """One-point crossover of the (term, weight) lists; scalars and flags mixed gene by gene."""
    pairs_a, pairs_b = list(zip(a.terms, a.alphas)), list(zip(b.terms, b.alphas))
    cut_a, cut_b = rng.randint(1, len(pairs_a)), rng.randint(0, len(pairs_b))
    pairs = (pairs_a[:cut_a] + pairs_b[cut_b:])[:MAX_TERMS] or pairs_a[:1]
    child = {k: (getattr(a, k) if rng.random() < 0.5 else getattr(b, k))
             for k in Genome.__dataclass_fields__ if k not in ("terms", "alphas")}
    return Genome(terms=[p[0] for p in pairs], alphas=[p[1] for p in pairs], **child)


def mutate(g: Genome, rng: random.Random, rate: float, memory: str) -> Genome:
    """Numeric perturbation, structural change (add/remove/change a term) and flag flips, each gene
    with probability ``rate`` (which anneals over a run)."""
    allowed = SCALAR_TERMS if memory == SCALAR else TERMS
    g = replace(g, terms=list(g.terms), alphas=list(g.alphas))
    clamp = lambda key, x: min(max(x, RANGES[key][0]), RANGES[key][1])  # noqa: E731
    for i in range(len(g.alphas)):
        if rng.random() < rate:
            g.alphas[i] = round(clamp("alpha", g.alphas[i] * (2 ** rng.gauss(0, 0.5))), 4)
    for key, sigma in (("gain_log10", 0.25), ("eps_log10", 0.5), ("wd_log10", 0.5), ("beta1", 0.05),
                       ("beta2", 0.01), ("clip_value", 0.5)):
        if rng.random() < rate:
            setattr(g, key, clamp(key, getattr(g, key) + rng.gauss(0, sigma)))
    if rng.random() < rate:
        g.warmup_steps = int(clamp("warmup_steps", g.warmup_steps + rng.randint(-50, 50)))
    for flag in ("use_wd", "bias_correction", "clip", "warmup", "cosine"):
        if rng.random() < rate / 2:
            setattr(g, flag, not getattr(g, flag))
    if rng.random() < rate:
        action = rng.choice(("add", "remove", "change"))
        if action == "add" and len(g.terms) < MAX_TERMS:
            g.terms.append(rng.choice(allowed))
            g.alphas.append(round(rng.uniform(*RANGES["alpha"]), 4))
        elif action == "remove" and len(g.terms) > 1:
            i = rng.randrange(len(g.terms))
            del g.terms[i], g.alphas[i]
        else:
            g.terms[rng.randrange(len(g.terms))] = rng.choice(allowed)
    g.terms = [t if t in allowed else rng.choice(allowed) for t in g.terms]
    return g


EVO_OPTIMIZER_LR = 10 ** -2.9199  # the published genome's learning rate (its gain below is relative to it)


def evo_optimizer_genome() -> Genome:
    """evo-optimizer's published best genome, written once: the bench's ``evo-genome`` reads it too."""
    return Genome(terms=["SIGN_GRAD", "SIGN_GRAD", "ADAM_TERM", "ADAM_TERM"], alphas=[0.4121, 0.3224, 2.0030, 1.6322],
                  gain_log10=0.0, eps_log10=-8.2642, wd_log10=-3.0112, beta1=0.8553, beta2=0.9358, use_wd=True,
                  bias_correction=False, clip=False, warmup=True, warmup_steps=100, cosine=True)



