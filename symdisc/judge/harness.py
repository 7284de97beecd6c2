"""Call a candidate's update and check what comes back, after every call.

Checks: the step is a tensor of the parameter's shape and dtype with only finite values; the state
obeys the memory class; grad and param were not changed (when asked: it costs two clones).
"""

from __future__ import annotations

from typing import Callable

import torch

from symdisc.contract import BUFFERS, MAX_SCALAR_INT, MAX_STATE_KEYS, SCALAR
from symdisc.judge.restricted import CandidateError

# State keys are names, not storage. Hole found by the hostile tests: keys were not bounded, so a
# scalar rule could pack a whole tensor into one int key (k = k * 2**32 + ...) or a long string
# key, read it back with max(state.keys()), and keep O(n) memory in the O(1) class.
MAX_KEY_CHARS = 64  # the gate's limit on string constants


def classify_exception(exc: BaseException) -> CandidateError:
    if isinstance(exc, CandidateError):
        return exc
    if isinstance(exc, MemoryError):
        return CandidateError("memory", "the candidate ran out of memory")
    if isinstance(exc, RecursionError):
        return CandidateError("recursion", "maximum recursion depth exceeded")
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if isinstance(exc, RuntimeError) and ("alloc" in text.lower() or "out of memory" in text.lower()):
        return CandidateError("memory", text[:200])
    return CandidateError("runtime", text[:300])


def check_state(state: dict, param: torch.Tensor, memory: str) -> tuple[int, int, int]:
    """Raise CandidateError if ``state`` breaks the memory class; return (bytes, number of scalars,
    number of buffers: tensors shaped like the parameter)."""
    if len(state) > MAX_STATE_KEYS:
        raise CandidateError("state_rule", f"state has {len(state)} keys (limit {MAX_STATE_KEYS})")
    size = scalars = buffers = 0
    for key, value in state.items():
        if type(key) not in (str, int):
            raise CandidateError("state_rule", f"state keys must be strings, got {type(key).__name__}")
        if type(key) is str and len(key) > MAX_KEY_CHARS:
            raise CandidateError("state_rule", f"a state key is {len(key)} characters long "
                                 f"(limit {MAX_KEY_CHARS}): keys are names, not storage")
        if type(key) is int and abs(key) > MAX_SCALAR_INT:
            raise CandidateError("state_rule", "a state key is an int wider than 64 bits: keys are names, not storage")
        if type(value) in (float, bool):
            size, scalars = size + 8, scalars + 1
            continue
        if type(value) is int:
            if abs(value) > MAX_SCALAR_INT:
                raise CandidateError("state_rule", f"state[{key!r}] is an int wider than 64 bits")
            size, scalars = size + 8, scalars + 1
            continue
        if isinstance(value, torch.Tensor):
            if memory == SCALAR:
                raise CandidateError("state_rule", f"state[{key!r}] holds a tensor; the scalar memory "
                                     "class allows only Python numbers (use .item())")
            # A buffer must be plain memory: a tensor that requires grad drags its autograd graph
            # (every earlier buffer) along, and a meta/sparse/other-device tensor escapes the
            # size accounting below. (Found by the hostile tests; it crashed the probes' deepcopy.)
            if type(value) is not torch.Tensor or value.layout != torch.strided \
                    or value.device != param.device or value.requires_grad:
                raise CandidateError("state_rule", f"state[{key!r}] must be a plain tensor on the parameter's "
                                     "device, without requires_grad")
            if memory == BUFFERS and value.dim() != 0 and value.shape != param.shape:
                raise CandidateError("state_rule", f"state[{key!r}] has shape {tuple(value.shape)}, "
                                     f"buffers must match the parameter's {tuple(param.shape)}")
            size += value.numel() * value.element_size()
            buffers += value.dim() != 0
            continue
        raise CandidateError("state_rule", f"state[{key!r}] holds a {type(value).__name__}; "
                             "state values must be numbers" + (" or tensors" if memory == BUFFERS else ""))
    return size, scalars, buffers


def check_step(step, param: torch.Tensor, finite: bool = True) -> None:
    if not isinstance(step, torch.Tensor):
        raise CandidateError("bad_output", f"update returned {type(step).__name__}, not a tensor")
    # Checked before any value is read: torch.isfinite on a `device='meta'` step raised (an import
    # the locked-down worker refuses) and surfaced as a worker "crash" instead of a verdict. A step
    # that requires grad makes the parameter carry an autograd graph that grows every step.
    if step.layout != torch.strided or step.device != param.device:
        raise CandidateError("bad_output", f"the step is a {step.layout} tensor on {step.device}, the "
                             f"parameter a {param.layout} tensor on {param.device}")
    if step.requires_grad and not param.requires_grad:
        raise CandidateError("bad_output", "the step requires grad; return a plain tensor")
    if step.shape != param.shape:
        raise CandidateError("bad_output", f"the step has shape {tuple(step.shape)}, the parameter "
                             f"{tuple(param.shape)}")
    if step.dtype != param.dtype:
        raise CandidateError("bad_output", f"the step is {step.dtype}, the parameter {param.dtype}")
    if finite and not bool(torch.isfinite(step).all()):
        raise CandidateError("bad_output", "the step holds NaN or infinite values")


class CheckedRule:
    """Wraps a compiled ``update`` so that every call is checked against the contract."""

    def __init__(self, update: Callable, memory: str, check_mutation: bool = True, check_finite: bool = True):
        self.update = update
        self.memory = memory
        self.check_mutation = check_mutation
        self.check_finite = check_finite
        self.calls = 0
        self.state_bytes = 0
        self.state_scalars = 0
        self.buffers = 0  # the most parameter-shaped tensors the state held after any call

    def __call__(self, grad: torch.Tensor, param: torch.Tensor, state: dict, lr: float, t: int) -> torch.Tensor:
        if self.check_mutation:
            grad_before, param_before = grad.clone(), param.clone()
        try:
            step = self.update(grad, param, state, lr, t)
        except Exception as exc:
            raise classify_exception(exc) from None
        self.calls += 1
        check_step(step, param, self.check_finite)
        self.state_bytes, self.state_scalars, buffers = check_state(state, param, self.memory)
        self.buffers = max(self.buffers, buffers)
        if self.check_mutation and not (torch.equal(grad, grad_before) and torch.equal(param, param_before)):
            raise CandidateError("mutation", "the candidate changed grad or param in place")
        return step
