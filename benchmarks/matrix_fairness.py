"""Does the cascade give a matrix rule a fair chance? Stateless Newton-Schulz against sign-SGD.

Scores both rules through every stage a run would take them (`symdisc check --score`: proxy, held-out,
long, audit) and prints each stage's score and best lr. Measured here (2 cores, shared), one run each:
  newton-schulz-5  proxy 0.684 (lr 0.1, the grid's top)  heldout 0.773  long 0.845  audit 0.882
  sign-sgd         proxy 0.692 (lr 0.01)                heldout 0.737  long 0.824  audit 0.856
Run: PYTHONPATH=. python benchmarks/matrix_fairness.py (several minutes; wrap it in flock /work/measure.lock)
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from matrix_rules import NEWTON_SCHULZ  # noqa: E402

from symdisc import rules  # noqa: E402
from symdisc.contract import SCALAR  # noqa: E402
from symdisc.judge.checking import score_candidate  # noqa: E402


def main() -> None:
    for name, source in (("newton-schulz-5", NEWTON_SCHULZ), ("sign-sgd", rules.source("sign_sgd"))):
        outcome = score_candidate(source, SCALAR)
        stages = "  ".join(f"{stage} {info.get('score', float('nan')):.3f} (lr {info.get('best_lr', 0):.3g})"
                           for stage, info in outcome["stages"].items() if info.get("ok"))
        print(f"{name:>16}  {stages}  rank {outcome['rank_score']}", flush=True)


if __name__ == "__main__":
    main()
