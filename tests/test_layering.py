"""Stages import only downward (docs/architecture in /work/shared/DESIGN.md; layers below).

Layers of salad (a module may import its own layer's helpers and any lower layer):
0. foundation: errors, artifacts, config, contracts (artifact schemas and readers), cli
   (parser, logging, device, seeds, Markdown).
1. libraries, pure helpers without a stage CLI: features (standardiser, object-tensor
   observables), plotstyle, tables (rendering), slha, detector, delphes (physics/IO helpers).
2. stages: every other module; a stage never imports another stage. A stage package
   (salad.cathode, salad.encoder) is ONE stage: its modules may import each other (e.g.
   cathode.run orchestrates cathode.flow/template/classify of the same job, evaluate reads the
   classify score contract it owns), but never another stage or package.
3. tools: __main__ (the dispatcher) and bench (benchmarks every stage) may import anything.
`artifacts._open_parquet` (and any private name of a lower module) stays inside its module.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "salad"
FOUNDATION = {"errors", "artifacts", "config", "contracts", "cli", "__init__"}
LIBRARIES = {"features", "plotstyle", "tables", "slha", "detector", "delphes"}
TOOLS = {"__main__", "bench"}


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted name under salad (e.g. 'cathode.flow') -> file."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported salad module, imported name or None, line) of every import in the file."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [
                (a.name[len("salad.") :], None, node.lineno)
                for a in node.names
                if a.name.startswith("salad.")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("salad"):
                target = node.module[len("salad.") :] if node.module != "salad" else ""
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".strip(".")
                found.append((sub if sub in modules() else target, alias.name, node.lineno))
    return found


def layer(module: str) -> tuple[int, str]:
    """(layer number, stage name) of a dotted module name."""
    top = module.split(".")[0] if module else "__init__"
    if top in FOUNDATION:
        return 0, top
    if top in LIBRARIES:
        return 1, top
    if top in TOOLS:
        return 3, top
    return 2, top


def test_layers_cover_existing_modules():
    tops = {m.split(".")[0] for m in modules()}
    assert FOUNDATION - tops == set() and LIBRARIES - tops == set() and TOOLS - tops == set()


def violations(name: str, path: Path) -> list[str]:
    """Imports of module `name` (file `path`) that go upward or into a sibling stage."""
    mine, my_stage = layer(name)
    bad = []
    for target, _, line in imports(name, path):
        theirs, their_stage = layer(target)
        ok = (
            mine == 3
            or theirs < mine
            or (theirs == mine and mine in (0, 1))
            or (theirs == mine == 2 and their_stage == my_stage)
        )
        if not ok:
            bad.append(f"{path.name}:{line}: salad.{name} imports salad.{target}")
    return bad


def test_no_module_imports_a_sibling_stage_or_upward():
    bad = [v for name, path in modules().items() for v in violations(name, path)]
    assert not bad, "\n".join(bad)


def test_private_names_stay_in_their_module():
    bad = []
    for name, path in modules().items():
        for target, imported, line in imports(name, path):
            if (
                imported
                and imported.startswith("_")
                and not imported.startswith("__")
                and target.split(".")[0] != name.split(".")[0]
            ):
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {imported} from salad.{target}")
    assert not bad, "\n".join(bad)


def test_the_checker_finds_violations(tmp_path):
    """Guard: relative and absolute imports resolve (a broken resolver would pass everything)."""
    fake = tmp_path / "fake.py"
    fake.write_text(
        "from .baselines import build\nfrom ..contracts import SUBSETS\n"
        "import salad.scans\nfrom salad.cathode import flow\nfrom .cli import setup_logging\n"
    )
    found = violations("nplm", fake)
    assert len(found) == 3 and "salad.baselines" in found[0] and "salad.cathode.flow" in found[2]
    assert violations("contracts", fake)  # the foundation imports no stage
    assert [v.split(": ")[1] for v in violations("cathode.run", fake)] == [
        "salad.cathode.run imports salad.scans"
    ]  # cathode.flow: inside the package
    assert layer("cathode.flow") == (2, "cathode") and layer("contracts")[0] == 0


# ---------------------------------------------------------------- rules: read top to bottom

RULES = SRC.parents[1] / "rules"
_TOP_ASSIGN = r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\+)?=(?!=)"


def test_rule_files_define_no_globals():
    """Every config section and derived list is bound in rules/common.smk, which the Snakefile
    includes first; a stage file holds rules only (report.smk's page list must be computed
    after every stage file registered its targets, so it is the one exception)."""
    import re

    allowed = {"report.smk": {"_REPORT_HTML"}}
    found = {}
    for path in sorted(RULES.glob("*.smk")):
        if path.name == "common.smk":
            continue
        names = set(re.findall(_TOP_ASSIGN, path.read_text(), re.M)) - allowed.get(path.name, set())
        if names:
            found[path.name] = sorted(names)
    assert found == {}


def test_each_config_section_is_bound_once():
    """No aliases: one top-level name per `config[...]` / `config.get(...)` section."""
    import collections
    import re

    text = (RULES / "common.smk").read_text()
    bound = collections.defaultdict(list)
    for name, section in re.findall(
        r"^([A-Z][A-Z0-9_]*)\s*=\s*config(?:\.get\(|\[)\"([a-z_]+)\"", text, re.M
    ):
        bound[section].append(name)
    assert {"pseudodata", "encoder", "cathode", "flow", "nplm"} <= set(bound)
    assert {s: n for s, n in bound.items() if len(n) > 1} == {}
