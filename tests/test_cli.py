"""salad.cli: the one parser, logging, seed and Markdown helpers every stage uses."""

from __future__ import annotations

import hashlib
import logging
import zlib

import pandas as pd

from salad import cli


def test_seeds_are_the_documented_hashes():
    # crc32 of "3/ID/Y400/5", low 31 bits (the CATHODE / NPLM wildcard seeds)
    assert cli.stable_seed(3, "ID", "Y400", 5) == zlib.crc32(b"3/ID/Y400/5") & 0x7FFFFFFF == 1837453972
    # sha256 of repr(parts), first 8 bytes little-endian, shifted to 63 bits (encoder streams)
    digest = hashlib.sha256(repr((1, "init")).encode()).digest()
    assert cli.derive_seed(1, "init") == int.from_bytes(digest[:8], "little") >> 1
    u = cli.hash_uniform([1, 2, 3], 7)
    assert ((u >= 0) & (u < 1)).all() and len(set(u)) == 3
    assert (cli.hash_uniform([1, 2, 3], 7) == u).all() and (cli.hash_uniform([1, 2, 3], 8) != u).all()


def test_stage_parser_and_logging(tmp_path):
    parser = cli.stage_parser("x")
    parser.add_argument("--output")
    log = tmp_path / "logs" / "a.log"
    args, cfg = cli.parse_stage_args(
        parser, ["--config", '{"flow": {"seed": 2}}', "--log", str(log), "--threads", "3"]
    )
    assert cfg == {"flow": {"seed": 2}} and args.threads == 3 and args.output is None
    logging.getLogger("salad.test").info("hello")
    assert "salad.test hello" in log.read_text()
    cli.setup_logging(log, append=True)
    logging.getLogger("salad.test").info("again")
    assert log.read_text().count("salad.test") == 2
    cli.setup_logging()


def test_write_markdown(tmp_path):
    path = tmp_path / "t.md"
    cli.write_markdown({"T": pd.DataFrame({"a": [1.23456, 2.0], "b": ["x", "y"]})}, str(path))
    assert path.read_text() == "## T\n\n| a | b |\n|---|---|\n| 1.235 | x |\n| 2 | y |\n"
