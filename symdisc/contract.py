"""The candidate contract and the project's one vocabulary: memory classes, statuses, stages, reasons.

A candidate is one function ``update(grad, param, state, lr, t)`` returning the step that the
harness subtracts from ``param``. Everything that judges candidates (gate, sandbox, probes,
proxy) and everything that records them (the loop, the store) uses the words defined here, and
the store refuses a row with a word that is not here, so a code means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

UPDATE_NAME = "update"
UPDATE_ARGS = ("grad", "param", "state", "lr", "t")

SCALAR = "scalar"  # O(1) memory: state holds at most MAX_STATE_KEYS Python numbers per parameter
BUFFERS = "buffers"  # state may also hold tensors shaped like the parameter (Adam, Lion)
MEMORY_CLASSES = (SCALAR, BUFFERS)

MAX_STATE_KEYS = 16
MAX_SCALAR_INT = 2**63 - 1  # ints beyond 64 bits could smuggle a whole tensor into one "scalar"

# Stable reason codes. The evolution loop shows them to the model, the run database stores them,
# so never rename one; add new ones instead.
REASONS = {
    # extraction
    "empty": "the output holds no code",
    "junk": "the output is not text (NUL or control bytes)",
    "no_code": "no Python code was found in the output",
    # gate
    "syntax": "the code does not parse",
    "no_update": "there is no `def update(grad, param, state, lr, t)`",
    "signature": "update has the wrong parameters",
    "redefined": "a function or constant is defined twice",
    "import": "imports are not allowed (torch and math are already there)",
    "dunder": "names or attributes with underscores at the start are not allowed",
    "forbidden_name": "a name outside the allow-list is used",
    "forbidden_attr": "an attribute or method outside the allow-list is used",
    "forbidden_syntax": "a statement or expression kind that candidates may not use",
    "format": "string formatting is not allowed",
    "inplace": "in-place tensor changes are not allowed; return the step instead",
    "attr_assign": "assigning attributes is not allowed",
    "stateful": "state that breaks the memory class (tensors in scalar state, aliases, defaults)",
    "global": "module-level code other than functions and numeric constants",
    "recursion": "functions may not call themselves or each other in a cycle",
    "loop": "loops must be `for i in range(N)` with a small constant N",
    "too_large": "a constant, power, matrix built from numbers or code size beyond the limits",
    "repeat": "the same program (or the same behaviour) as an earlier candidate",
    # sandbox (runtime)
    "compile": "RestrictedPython refused the code",
    "runtime": "the code raised an exception",
    "bad_output": "the step is not a finite tensor of the parameter's shape and dtype",
    "ignores_lr": "the step is not zero when lr == 0",
    "mutation": "the candidate changed grad or param",
    "state_rule": "the state broke the memory class at run time",
    "timeout": "the candidate ran past its wall-clock limit",
    "cpu_time": "the candidate ran past its CPU-time limit",
    "memory": "the candidate ran out of its memory limit",
    "crash": "the sandbox worker died",
    # stage 0 probes
    "no_descent": "the rule does not descend a simple function with any learning rate tried",
    "unstable": "the rule blows up on tiny or huge gradients",
    "ignores_grad": "the step does not follow the gradient (it is the same for opposite gradients)",
    "superlinear": "time or memory of one step grows faster than linearly (no longer given: over_budget replaced it)",
    "over_budget": "one step costs more CPU time or memory than its budget (multiples of a reference on that shape)",
    "sparse_grad": "the step is not finite, or explodes, on gradients with many or only exact zeros (ReLU layers, embeddings)",
    # proxy fitness
    "diverged": "training diverged (NaN or exploding loss)",
    # user task files (symdisc.tasks)
    "task_error": "the task file's own code failed (import, prepare or train raised, or train returned no score)",
}


# What happened to a candidate (candidates.status). A status is never also a reason.
STATUSES = {
    "pending": "the reply is stored and not judged yet (a killed run judges it on --resume)",
    "rejected": "the gate refused it before anything ran (stage gate; reason says why)",
    "failed": "it passed the gate but failed a later stage (sandbox, probe, proxy, heldout)",
    "duplicate": "the same program or behaviour as an earlier candidate (reason repeat, duplicate_of)",
    "evaluated": "it passed every stage it was sent to; fitness holds its proxy score",
}

# Where it happened (candidates.stage, evaluations.stage), in the order a candidate meets them.
STAGES = {
    "generate": "the model call (a cluster run records a generation lost twice here)",
    "gate": "extraction and the static AST gate, in the gate process",
    "sandbox": "the locked-down worker itself (crash, timeout, memory, CPU time)",
    "probe": "stage 0: lr == 0, quadratic and Rosenbrock descent, scaled and sparse gradients, cost",
    "proxy": "tiny noisy classification tasks, several seeds batched",
    "heldout": "a short real-data task the proxy never sees (fidelity 2; training-data subsets only), "
               "or the --task files at a fraction of their STEPS",
    "long": "a longer real-data stage for the few best (fidelity 3; training-data subsets only), "
            "or the --task files at their full STEPS",
    "audit": "a real task the search never selects on, scored for a run's top few (reported only)",
    "bench": "full training on a real data set (symdisc bench)",
}

# The cascade's fidelities: the stages a run ranks by, cheapest first (a higher one outranks).
FIDELITY = {"proxy": 1, "heldout": 2, "long": 3}

ORIGINS = {
    "seed": "a built-in rule that starts every run",
    "llm": "written by the language model",
    "genome": "the genetic algorithm over optimizer genomes",
    "tpe": "Optuna's TPE sampler over the genome space",
    "random": "uniform random genomes (the sampling baseline)",
    "simplify": "symdisc simplify's reduction of an evaluated candidate",
    "mutate": "the mutation engine: one typed edit of a parent's AST (search/mutations.py)",
    "fit": "a program with its constants and a learning-rate multiplier fitted on the proxy",
}

# The prompt operators of the llm proposer (candidates.operator); each is a file in prompts/operators/.
OPERATORS = {
    "explore": "a rule unlike the programs shown, written from scratch",
    "mutate": "the parent with exactly one idea changed, the idea drawn from prompts/operators/ideas.md",
    "crossover": "the main idea of one parent with one idea of a second",
    "constants": "the parent's structure with new constants",
    "simplify": "the parent with fewer lines and terms",
    "fix": "a rejected or failed program with its error, to correct",
    "legacy": "the old prompt: the best programs and the last errors (llm-legacy)",
    "independent": "the seed prompt, sampled independently every time (llm-independent)",
    # the mutation engine's operators (origin mutate; crossover is shared with the prompt operator)
    "insert": "mutation: a new typed statement, with one later use rewired to it",
    "state": "mutation: an average kept in a new state slot that reads as zero until written",
    "delete": "mutation: a statement removed, its uses rewired to a same-typed variable",
    "modify": "mutation: an operator or an argument changed to another of the same type",
    "swap": "mutation: a function swapped for another of the same kind from the gate's allow-list",
    "constant": "mutation: one numeric constant multiplied by 2^N(0,1)",
    "fit": "the program's constants and a learning-rate multiplier fitted on the proxy (origin fit)",
}

RUN_KINDS = ("evolve", "bench", "compare")
RUN_STATUSES = ("running", "finished", "interrupted", "failed")


@dataclass
class Verdict:
    """The outcome of one judging stage. ``reason`` is a key of REASONS when ``ok`` is False."""

    ok: bool
    stage: str  # "gate" | "sandbox" | "probe" | "proxy"
    reason: Optional[str] = None
    message: Optional[str] = None
    line: Optional[int] = None

    def as_dict(self) -> dict:
        return dict(vars(self))  # fields are plain values: no need for asdict's deep copy

    def one_line(self) -> str:
        if self.ok:
            return f"{self.stage}: ok"
        where = f" (line {self.line})" if self.line else ""
        return f"{self.stage}: {self.reason}: {self.message}{where}"


def reject(stage: str, reason: str, message: str, line: Optional[int] = None) -> Verdict:
    assert reason in REASONS, reason
    return Verdict(ok=False, stage=stage, reason=reason, message=message, line=line)
