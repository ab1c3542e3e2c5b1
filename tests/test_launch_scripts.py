"""The ready-made launchers in scripts/ produce commands our trainer accepts, with UniVTG's options."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from univtg_core.training.options import build_parser

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("train_*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_launcher_command_parses(script, tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "FEAT_ROOT": str(tmp_path), "V_FEAT_TYPES": "slowfast_clip"}
    result = subprocess.run(["bash", str(script), "--n_epoch", "3"], capture_output=True, text=True, env=env,
                            check=True)
    argv = shlex.split(result.stdout)
    assert argv[:3] == ["python", "-m", "univtg_core.training"]
    opt = build_parser().parse_args(argv[3:])
    assert opt.n_epoch == 3, "extra options given to the script come last and win"
    assert opt.v_feat_dirs == [f"{tmp_path}/vid_slowfast", f"{tmp_path}/vid_clip"]
    assert opt.hidden_dim == 1024 and opt.enc_layers == 4 and opt.lr == 1e-4 and opt.b_loss_coef == 10
    assert Path(opt.train_path[0]).parent == tmp_path / "metadata"


def test_launcher_uses_torchrun_for_several_gpus(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "NPROC": "4", "FEAT_ROOT": str(tmp_path)}
    result = subprocess.run(["bash", str(SCRIPTS[0])], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.startswith("torchrun --nproc_per_node 4 -m univtg_core.training")
