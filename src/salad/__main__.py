"""`python -m salad <stage> [options]`: run one pipeline stage.

Each stage module defines `cli(argv)`. Errors meant for users (SaladError) and operating
system errors (OSError: disk full, permission denied) print one line,
`salad: error: <message>`, and exit with status 1.
"""

from __future__ import annotations

import importlib
import sys

from .artifacts import reset_inputs
from .errors import SaladError

STAGES = {
    "generate": "salad.generate",
    "preselect": "salad.preselect",
    "split": "salad.split",
    "pseudodata": "salad.pseudodata",
    "evaluation-set": "salad.evalset",
    "train-encoder": "salad.encoder.train",
    "embed": "salad.encoder.embed",
    "cathode": "salad.cathode.run",
    "fit-flow": "salad.cathode.flow",
    "sample-sr": "salad.cathode.template",
    "classify": "salad.cathode.classify",
    "evaluate": "salad.cathode.evaluate",
    "inspect": "salad.inspect",
    "check-config": "salad.config",
    "contracts": "salad.contracts",
    "embed-baseline": "salad.baselines",
    "nplm": "salad.nplm",
    "linear-eval": "salad.linear_eval",
    "information": "salad.encoder.information",
    "dimension-scan": "salad.scans",
    "tables": "salad.tables",
    "paper-comparison": "salad.comparison",
    "scaling": "salad.scaling",
}


def _one_line(exc: BaseException) -> str:
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip() + "\n\nstages: " + ", ".join(STAGES))
        return 0 if argv else 2
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"salad: error: unknown stage {stage!r}; known: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    reset_inputs()
    try:
        importlib.import_module(STAGES[stage]).cli(rest)
    except SaladError as exc:
        # one line, whatever a wrapped library message holds (e.g. uproot's multi-line errors)
        print(f"salad: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permission denied, ... outside an atomic write
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"salad: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
