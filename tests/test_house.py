"""The house rules that no import contract can check.

Everything that ranks items by score goes through recloop.data.ranking (one tie rule), and
names that moved say where they live now.

A sort or partition outside that module must be one of the exceptions below, each with its
reason. A new ``argsort``/``argpartition``/``.topk(`` elsewhere fails here: rank through
:func:`recloop.data.ranking.top_k`, or add it with the reason it is not a ranking.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "recloop"
RANKERS = re.compile(r"\bargsort\(|\bargpartition\(|\.topk\(")

#: (file, how many sorts) → why it is not a ranking of items by score.
EXCEPTIONS = {
    # Sampling: ordering random keys draws a slate; exact ties have probability zero.
    "ope/policies.py": (6, "Gumbel-top-k and uniform slates: orders of random keys"),
    "ope/obd.py": (1, "Bernoulli TS propensities: top-k of Beta draws"),
    "serve/policy.py": (2, "Thompson sampling: each draw's top-k, for its propensities"),
    "bench/experiments/diagnose.py": (1, "look-ahead candidates: Gumbel-top-k draws"),
    "bench/experiments/ope_sim.py": (1, "uniform logged slates: orders of random keys"),
    "eval/agreement.py": (1, "random half-splits of the units: permutations of random keys"),
    "bench/experiments/fidelity.py": (
        2,
        "sessions grouped by user, and the KS distance's sorted samples",
    ),
    "bench/experiments/fidelity_next_item.py": (1, "start histories gathered in user order"),
    # Not items by score.
    "sim/rating.py": (1, "groups rows by a key (a counting sort), ranks nothing"),
    "models/sequential.py": (1, "batches users of similar sequence length together"),
    "eval/stats.py": (1, "Holm's step-down order of p-values"),
    # Torch, in training: DQN's click target over Q-values, where ties have measure zero.
    "rl/deep.py": (1, "DQN's target slate: top-k of float Q-values in a torch graph"),
}


def test_nothing_ranks_outside_the_ranking_module() -> None:
    found: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "data/ranking.py":
            continue
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        n = len(RANKERS.findall(code))
        if n:
            found[rel] = n
    unexpected = {f: n for f, n in found.items() if f not in EXCEPTIONS}
    assert not unexpected, (
        f"{unexpected} sort items outside recloop.data.ranking: rank through "
        "recloop.data.ranking.top_k (one tie rule), or add an exception with its reason"
    )
    grown = {f: n for f, n in found.items() if f in EXCEPTIONS and n > EXCEPTIONS[f][0]}
    assert not grown, f"{grown}: more sorts than the exceptions allow; rank through top_k"


def test_names_that_moved_say_where_they_live_now() -> None:
    """Code written against the old layout gets an error naming the new home."""
    import pytest

    from recloop.errors import ConfigError
    from recloop.models.sequential import SASRec

    with pytest.raises(ImportError, match=r"recloop\.runs\.RunSpec has moved.*recloop\.bench"):
        from recloop.runs import RunSpec  # noqa: F401
    with pytest.raises(ImportError, match=r"OnlineLearner has moved.*recloop\.serve\.learner"):
        from recloop.serve.policy import OnlineLearner  # noqa: F401
    with pytest.raises(AttributeError):
        from recloop import runs

        runs.no_such_name  # noqa: B018
    with pytest.raises(ConfigError, match=r"sasrec\+rl"):
        SASRec(head="sqn")
