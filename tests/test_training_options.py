"""Every trainer option is either read by the code or listed as ignored by the architecture's recipe, and an
ignored option set to a non-default value is announced."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from univtg_core.training.options import build_parser, parse_options, warn_unused_options
from univtg_core.training.recipes.univtg import IGNORED_OPTIONS

PACKAGE = Path(__file__).resolve().parents[1] / "univtg_core"
REQUIRED = ["--train_path", "t.jsonl", "--v_feat_dirs", "v", "--t_feat_dir", "t"]


def _options_read_by_the_code() -> set[str]:
    """`opt.NAME` anywhere in the trainer, the recipes and the models (options reach nothing else), MESM's and
    RGNet's modules left out (they read their own options, checked below)."""
    sources = [*PACKAGE.glob("training/**/*.py"), *PACKAGE.glob("models/*.py")]
    sources = [p for p in sources if not p.name.startswith(("mesm", "rgnet"))]
    read: set[str] = set()
    for path in sources:
        read |= set(re.findall(r"\bopt\.(\w+)", path.read_text()))
    return read


def test_every_option_is_read_or_listed_as_ignored():
    options = {action.dest for action in build_parser()._actions if action.dest != "help"}
    read = _options_read_by_the_code()
    neither = sorted(options - read - IGNORED_OPTIONS)
    assert neither == [], f"options neither read nor listed as ignored: {neither}"
    listed_but_read = sorted(IGNORED_OPTIONS & read)
    assert listed_but_read == [], f"listed as ignored but read by the code: {listed_but_read}"
    assert IGNORED_OPTIONS <= options, sorted(IGNORED_OPTIONS - options)


# MESM's options are read by the generic trainer and by MESM's own modules, never by UniVTG's.
MESM_SOURCES = ["training/loop.py", "training/predict.py", "training/data_setup.py", "training/schedule.py",
                "training/checkpoints.py", "training/distributed.py", "training/logs.py", "training/mesm_*.py",
                "training/recipes/mesm.py", "models/mesm*.py"]


def test_every_mesm_option_is_read_or_listed_as_ignored():
    from univtg_core.training import mesm_options
    from univtg_core.training.recipes.mesm import IGNORED_OPTIONS as MESM_IGNORED

    options = {action.dest for action in mesm_options.build_parser()._actions if action.dest != "help"}
    read: set[str] = set()
    for pattern in MESM_SOURCES:
        for path in PACKAGE.glob(pattern):
            read |= set(re.findall(r"\bopt\.(\w+)", path.read_text()))
    neither = sorted(options - read - MESM_IGNORED)
    assert neither == [], f"MESM options neither read nor listed as ignored: {neither}"
    assert sorted(MESM_IGNORED & read) == [] and MESM_IGNORED <= options


# RGNet's options likewise; its config and loss settings are read by name (the official option names are the
# fields of RGNetConfig and RGNetLossConfig, filled from vars(opt)).
RGNET_SOURCES = ["training/loop.py", "training/predict.py", "training/schedule.py", "training/checkpoints.py",
                 "training/distributed.py", "training/logs.py", "training/rgnet_*.py", "training/recipes/rgnet.py",
                 "models/rgnet*.py"]


def test_every_rgnet_option_is_read_or_listed_as_ignored():
    from dataclasses import fields

    from univtg_core.models.rgnet import RGNetConfig
    from univtg_core.training import rgnet_options
    from univtg_core.training.recipes.rgnet import IGNORED_OPTIONS as RGNET_IGNORED
    from univtg_core.training.rgnet_losses import RGNetLossConfig

    options = {action.dest for action in rgnet_options.build_parser()._actions if action.dest != "help"}
    read = {f.name for f in fields(RGNetConfig)} | {f.name for f in fields(RGNetLossConfig)}
    for pattern in RGNET_SOURCES:
        for path in PACKAGE.glob(pattern):
            read |= set(re.findall(r"\bopt\.(\w+)", path.read_text()))
    neither = sorted(options - read - RGNET_IGNORED)
    assert neither == [], f"RGNet options neither read nor listed as ignored: {neither}"
    assert sorted(RGNET_IGNORED & read) == [] and RGNET_IGNORED <= options


def test_an_ignored_option_with_a_non_default_value_warns(caplog):
    opt = parse_options([*REQUIRED, "--num_queries", "5", "--dec_layers", "3", "--position_embedding", "learned"])
    with caplog.at_level(logging.WARNING):
        changed = warn_unused_options(opt, IGNORED_OPTIONS, "univtg")
    assert changed == ["dec_layers", "num_queries", "position_embedding"]
    assert len(caplog.records) == 1 and "--num_queries 5" in caplog.text and "'learned'" in caplog.text
    caplog.clear()
    assert warn_unused_options(parse_options([*REQUIRED, "--num_queries", "10"]), IGNORED_OPTIONS, "univtg") == []
    assert caplog.records == []


def test_unknown_model_id_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse_options([*REQUIRED, "--model_id", "moment_detr"])
    assert info.value.code == 2 and "univtg" in capsys.readouterr().err
