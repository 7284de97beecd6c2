"""Issue 12: small-model failure modes, each where it belongs, on replies in the shape real runs logged.

tests/data/small_model_replies.json holds replies of qwen2.5-coder-0.5b/1.5b under the grammar
(from benchmarks/novelty.py runs and the first campaign's runs), one list per failure mode.
"""

import json
import re
from pathlib import Path

import pytest

from symdisc.judge.extract import extract_code, strip_slash_comments
from symdisc.judge.gate import check_reply
from symdisc.search.prompting import grammar_regex

DATA = json.loads((Path(__file__).parent / "data" / "small_model_replies.json").read_text())


@pytest.mark.parametrize("reply", DATA["slash_comments"])
def test_slash_comments_are_stripped_where_they_break_the_code(reply):
    result = check_reply(reply)
    assert result.verdict.ok, result.verdict.one_line()
    assert "//" not in result.code.replace("// 2", "")


def test_floor_division_is_kept():
    code = "def update(grad, param, state, lr, t):\n    k = t // 2  // half the step count\n    return lr * grad / k\n"
    assert "t // 2" in strip_slash_comments(code) and "half" not in strip_slash_comments(code)
    plain = "def update(grad, param, state, lr, t):\n    return lr * grad * (t // 2)\n"
    assert strip_slash_comments(plain) == plain


@pytest.mark.parametrize("reply", DATA["undefined_names"])
def test_undefined_names_say_what_to_do(reply):
    v = check_reply(reply).verdict
    assert not v.ok and v.reason == "forbidden_name"
    assert "never assigned" in v.message and "whole function" in v.message


@pytest.mark.parametrize("reply", DATA["half_copied"])
def test_half_copied_programs_are_rejected_with_a_usable_error(reply):
    v = check_reply(reply).verdict
    assert not v.ok and v.line is not None
    assert v.message


@pytest.mark.parametrize("reply", DATA["long_return"])
def test_a_long_return_line_fits_the_grammar_now(reply):
    old = grammar_regex(12, 100, 101)  # the older grammar: return lines cut at 90 characters
    assert re.fullmatch(grammar_regex(), reply)
    assert not re.fullmatch(old, reply)
    assert check_reply(reply).verdict.ok
