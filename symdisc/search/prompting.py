"""Build the model's prompt from the editable texts in prompts/.

The system message (role + whiteboard + contract) is fixed for a run: an unchanging prefix that
llama.cpp evaluates once. The user message carries what changes: the best programs so far in
ascending order of score, and the last three errors ("controlled amnesia": nothing older).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Optional

from symdisc.contract import UPDATE_ARGS
from symdisc.errors import ConfigError
from symdisc.resources import prompts_dir

# Forces the reply to be one `def update(...)`: at most GRAMMAR_LINES body lines of at most
# GRAMMAR_LINE_CHARS characters, where lines at the function's own indentation may not start with
# "r" (so the only way to say `return` there is the final rule, which ends the reply), and no line
# holds "#" or a backtick. Small models otherwise ramble in comments, fences or one endless
# expression until max_tokens. The return line gets more room than the others: cut at 90
# characters (as it was), a long `return lr * (...)` ended mid-expression, a syntax error.
GRAMMAR_LINES = 12
GRAMMAR_LINE_CHARS = 120
GRAMMAR_RETURN_CHARS = 200


def update_grammar(lines: int = GRAMMAR_LINES, line_chars: int = GRAMMAR_LINE_CHARS,
                   return_chars: int = GRAMMAR_RETURN_CHARS) -> str:
    return (r'''
root   ::= "def update(''' + ", ".join(UPDATE_ARGS) + r'''):\n" line{0,%d} return
line   ::= "    " ( [^\n`#r ] [^\n`#]{0,%d} | " " [^\n`#]{1,%d} ) "\n"
return ::= "    return " [^\n`#]{1,%d} "\n"
''' % (lines, line_chars - 5, line_chars - 5, return_chars - 11))


def grammar_regex(lines: int = GRAMMAR_LINES, line_chars: int = GRAMMAR_LINE_CHARS,
                  return_chars: int = GRAMMAR_RETURN_CHARS) -> str:
    """The language of ``update_grammar`` as a Python regex (tests check logged replies against it)."""
    head = r"def update\(" + ", ".join(UPDATE_ARGS) + r"\):\n"
    line = r"    (?:[^\n`#r ][^\n`#]{0,%d}| [^\n`#]{1,%d})\n" % (line_chars - 5, line_chars - 5)
    ret = r"    return [^\n`#]{1,%d}\n" % (return_chars - 11)
    return head + "(?:" + line + "){0,%d}" % lines + ret


UPDATE_GRAMMAR = update_grammar()

GRAMMAR_MAX_PARAMS_B = 2.0  # below this size, models need the skeleton forced on them


@dataclass
class PromptTexts:
    system: str
    whiteboard: str
    contract: str
    memory_rules: str
    propose: str
    # The llm proposer's operators (prompts/operators/*.md by name, plus "ideas", the list of single
    # edits, and "context", the user message around an operator). Runs saved before them have none.
    operators: dict = field(default_factory=dict)

    def system_message(self) -> str:
        contract = Template(self.contract).safe_substitute(memory_rules=self.memory_rules.strip())
        return "\n\n".join(part.strip() for part in (self.system, self.whiteboard, contract)) + "\n"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def load_prompts(memory: str, folder: Optional[Path] = None, max_buffers: Optional[int] = None) -> PromptTexts:
    """The prompt texts of a run; ``max_buffers`` adds the run's limit on tensors in state to the
    memory rule."""
    folder = Path(folder) if folder else prompts_dir()

    def read(name: str) -> str:
        path = folder / name
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            raise ConfigError(f"prompt file {path} is missing or unreadable") from None

    operators = {path.stem: path.read_text(encoding="utf-8") for path in sorted((folder / "operators").glob("*.md"))}
    if (folder / "context.md").exists():
        operators["context"] = read("context.md")
    memory_rules = read(f"memory_{memory}.md")
    if max_buffers is not None:
        memory_rules = memory_rules.rstrip() + (
            f"\nThis run allows at most {max_buffers} tensor{'s' if max_buffers != 1 else ''} shaped like param in "
            "state at once; a program that keeps more is refused.\n")
    return PromptTexts(system=read("system.md"), whiteboard=read("whiteboard.md"), contract=read("contract.md"),
                       memory_rules=memory_rules, propose=read("propose.md"), operators=operators)


def format_programs(programs: list[dict]) -> str:
    """Programs in ascending order of the run's ranking (the highest fidelity reached, then the score
    there), so the best sits closest to the instruction; each score with its stage and noise band."""
    from symdisc.store import rank_value

    if not programs:
        return "(none yet)"
    blocks = []
    for p in sorted(programs, key=rank_value):
        label = f" ({p['name']})" if p.get("name") else ""
        stage = "proxy" if p.get("heldout") is None else f"real data; proxy {p['fitness']:.4f}"
        shown = p["fitness"] if p.get("heldout") is None else p["heldout"]
        blocks.append(f"# score {shown:.4f} [{stage}]{label}\n{(p.get('normalized') or p['code']).strip()}")
    return "\n\n".join(blocks)


def format_errors(errors: list[dict]) -> str:
    if not errors:
        return "(none)"
    lines = []
    for e in errors:
        where = f", line {e['line']}" if e.get("line") else ""
        lines.append(f"- {e.get('stage') or 'gate'} rejected a program [{e.get('reason')}{where}]: {e.get('message')}")
    return "\n".join(lines)


def program_text(p: dict) -> str:
    return (p.get("normalized") or p.get("code") or p.get("response") or "").strip()


def operator_message(texts: PromptTexts, operator: str, context: list[dict], errors: list[dict],
                     fill: dict) -> str:
    """An operator's user message: the context programs and the last errors first (what several
    children of one parent share), the operator's task with its parent, idea and error last."""
    task = Template(texts.operators[operator]).safe_substitute(**fill).strip()
    frame = texts.operators.get("context", "$programs\n\n$errors\n\n$task")
    return Template(frame).safe_substitute(programs=format_programs(context), errors=format_errors(errors),
                                           task=task).strip() + "\n"


def user_message(texts: PromptTexts, programs: list[dict], errors: list[dict]) -> str:
    return Template(texts.propose).safe_substitute(programs=format_programs(programs),
                                                   errors=format_errors(errors)).strip() + "\n"


def grammar_enabled(setting: Optional[bool], params_b: Optional[float]) -> bool:
    if setting is not None:
        return setting
    return params_b is not None and params_b < GRAMMAR_MAX_PARAMS_B
