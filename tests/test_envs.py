"""The conda environment files pin exactly the versions that `make setup` installs."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def env_pins(path: Path) -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            for sep in ("==", "="):
                if sep in entry:
                    name, version = entry.split(sep, 1)
                    pins[name.strip().lower()] = version.strip()
                    break
    pins.pop("python", None)
    return pins


def test_every_env_file_matches_requirements():
    required = requirement_pins()
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert env_files, "no conda environment files under envs/"
    for path in env_files:
        pins = env_pins(path)
        assert pins, f"{path} pins nothing"
        for name, version in pins.items():
            assert name in required, f"{path}: {name} is not pinned in requirements.txt"
            assert version == required[name], (
                f"{path}: {name}={version}, requirements.txt has {required[name]}"
            )


def test_all_requirements_in_some_env():
    covered = set()
    for path in (REPO / "envs").glob("*.yaml"):
        covered |= set(env_pins(path))
    assert set(requirement_pins()) <= covered
