"""Build the model's prompt from the editable texts in prompts/.

The system message (role + whiteboard + contract) is fixed for a run: an unchanging prefix that
llama.cpp evaluates once. The user message carries what changes: the best programs so far in
ascending order of score, and the last three errors ("controlled amnesia": nothing older).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Optional

from symdisc.contract import UPDATE_ARGS
from symdisc.errors import ConfigError
from symdisc.resources import prompts_dir

# Forces the reply to be one `def update(...)`: at most 12 body lines of at most 100 characters,
# where lines at the function's own indentation may not start with "r" (so the only way to say
# `return` there is the final rule, which ends the reply), and no line holds "#" or a backtick.
# Small models otherwise ramble in comments, fences or one endless expression until max_tokens.
UPDATE_GRAMMAR = r'''
root   ::= "def update(''' + ", ".join(UPDATE_ARGS) + r'''):\n" line{0,12} return
line   ::= "    " ( [^\n`#r ] [^\n`#]{0,95} | " " [^\n`#]{1,95} ) "\n"
return ::= "    return " [^\n`#]{1,90} "\n"
'''

GRAMMAR_MAX_PARAMS_B = 2.0  # below this size, models need the skeleton forced on them


@dataclass
class PromptTexts:
    system: str
    whiteboard: str
    contract: str
    memory_rules: str
    propose: str

    def system_message(self) -> str:
        contract = Template(self.contract).safe_substitute(memory_rules=self.memory_rules.strip())
        return "\n\n".join(part.strip() for part in (self.system, self.whiteboard, contract)) + "\n"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def load_prompts(memory: str, folder: Optional[Path] = None) -> PromptTexts:
    folder = Path(folder) if folder else prompts_dir()

    def read(name: str) -> str:
        path = folder / name
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            raise ConfigError(f"prompt file {path} is missing or unreadable") from None

    return PromptTexts(system=read("system.md"), whiteboard=read("whiteboard.md"), contract=read("contract.md"),
                       memory_rules=read(f"memory_{memory}.md"), propose=read("propose.md"))


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


def user_message(texts: PromptTexts, programs: list[dict], errors: list[dict]) -> str:
    return Template(texts.propose).safe_substitute(programs=format_programs(programs),
                                                   errors=format_errors(errors)).strip() + "\n"


def grammar_enabled(setting: Optional[bool], params_b: Optional[float]) -> bool:
    if setting is not None:
        return setting
    return params_b is not None and params_b < GRAMMAR_MAX_PARAMS_B
