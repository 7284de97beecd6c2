"""extract_code: from a language model's raw reply to candidate source (it never judges the code)."""

from __future__ import annotations

import ast

import pytest

from symdisc.judge.extract import MAX_REPLY_CHARS, extract_code

SGD = "def update(grad, param, state, lr, t):\n    return lr * grad\n"


def parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except SyntaxError:
        return False


def test_fenced_python_block():
    reply = "Here is my rule:\n\n```python\n" + SGD + "```\n\nIt is plain SGD."
    got = extract_code(reply)
    assert got.code == SGD
    assert got.reason is None and not got.truncated


@pytest.mark.parametrize("opening, closing", [
    ("```", "```"), ("```py", "```"), ("~~~python", "~~~"), ("````python", "````"), ("```Python title", "```"),
])
def test_fence_variants(opening, closing):
    assert extract_code(f"{opening}\n{SGD}{closing}\n").code == SGD


def test_crlf_line_endings():
    reply = "```python\r\n" + SGD.replace("\n", "\r\n") + "```\r\n"
    assert extract_code(reply).code == SGD


def test_bare_code_with_prose_before_and_after():
    reply = ("Sure! The idea is to follow the gradient.\n\n"
             "BETA = 0.9\n\n"
             + SGD +
             "\nThis keeps no state, so it fits the scalar class.\n")
    got = extract_code(reply)
    assert got.code == "BETA = 0.9\n\n" + SGD
    assert parses(got.code)
    assert "This keeps" not in got.code


def test_bare_code_keeps_indented_and_comment_lines():
    code = ("def update(grad, param, state, lr, t):\n"
            "    # a comment\n"
            "    s = torch.sign(grad)\n"
            "\n"
            "    return lr * s\n")
    got = extract_code("Answer:\n" + code + "Done.")
    assert got.code == code


def test_several_blocks_choose_the_one_defining_update():
    reply = ("First, the helper I use:\n```python\ndef helper(x):\n    return x * 2\n```\n"
             "And a usage example:\n```python\nprint(update(g, p, {}, 0.1, 1))\n```\n"
             "The rule:\n```python\n" + SGD + "```\n")
    assert extract_code(reply).code == SGD


def test_several_update_blocks_choose_the_last_complete_one():
    first = SGD
    second = "def update(grad, param, state, lr, t):\n    return lr * torch.sign(grad)\n"
    reply = f"```python\n{first}```\nWait, better:\n```python\n{second}```\n"
    assert extract_code(reply).code == second


def test_complete_block_wins_over_a_truncated_revision():
    reply = ("```python\n" + SGD + "```\nA revision:\n"
             "```python\ndef update(grad, param, state, lr, t):\n    m = state.get(")
    got = extract_code(reply)
    assert got.code == SGD and not got.truncated


def test_unclosed_fence_is_truncated_code():
    reply = "```python\ndef update(grad, param, state, lr, t):\n    m = torch.sign(grad\n"
    got = extract_code(reply)
    assert got.truncated
    assert got.code.startswith("def update(grad, param, state, lr, t):")
    assert not parses(got.code)  # the gate will say "syntax ... truncated"


def test_unclosed_fence_with_complete_code_still_parses():
    got = extract_code("```python\n" + SGD)
    assert got.truncated and got.code == SGD


def test_nul_bytes_are_junk():
    got = extract_code("```python\n" + SGD.replace("lr *", "lr\x00 *") + "```")
    assert got.code is None and got.reason == "junk"


@pytest.mark.parametrize("byte", ["\x01", "\x07", "\x1b", "\x1f"])
def test_control_bytes_are_junk(byte):
    got = extract_code(SGD + byte)
    assert got.code is None and got.reason == "junk"


def test_tabs_mixed_with_spaces_are_normalised():
    code = ("def update(grad, param, state, lr, t):\n"
            "\ts = torch.sign(grad)\n"
            "    return lr * s\n")
    with pytest.raises((TabError, SyntaxError)):
        compile(code.replace("\ts", "\t s"), "<x>", "exec")  # mixing is an error as written
    got = extract_code("```python\n" + code + "```")
    assert "\t" not in got.code
    assert parses(got.code)
    assert got.code.splitlines()[1] == "    s = torch.sign(grad)"


def test_trailing_whitespace_is_stripped():
    got = extract_code("```python\ndef update(grad, param, state, lr, t):   \n    return lr * grad  \n```")
    assert got.code == SGD


@pytest.mark.parametrize("reply", ["", "   ", "\n\n\t\n", None])
def test_empty_output(reply):
    got = extract_code(reply)
    assert got.code is None and got.reason == "empty"


@pytest.mark.parametrize("reply", [
    "I am not sure how to write this optimizer. Could you give me more details?",
    "The best rule is Adam.\nIt uses two moments.\nThat is all.",
    "```\n\n```",  # an empty fenced block
])
def test_prose_only_is_no_code(reply):
    got = extract_code(reply)
    assert got.code is None and got.reason == "no_code"


def test_huge_reply_is_cut_not_choked_on():
    reply = "```python\n" + SGD + "```\n" + "blah " * (MAX_REPLY_CHARS // 2)
    assert extract_code(reply).code == SGD


def test_model_that_forgot_to_indent_return():
    reply = "def update(grad, param, state, lr, t):\nreturn lr * grad\n"
    got = extract_code(reply)
    assert "return lr * grad" in got.code  # kept: the gate reports the indentation error
