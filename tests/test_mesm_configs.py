"""MESM checkpoints of other configurations, written in the official format, load strictly and run."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from univtg_core.errors import CheckpointError
from univtg_core.models import QueryInput
from univtg_core.models.mesm import MESM, MESMConfig, load_mesm, official_options, save_mesm_checkpoint
from univtg_core.training.mesm_losses import MESMCriterion, MESMLossConfig, build_targets


def _read_back(path):
    """A checkpoint this test saved, read back the safe way (its options are an argparse.Namespace)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, weights_only=True)


CONFIGS = {
    # Charades VGG + GloVe (vocabulary pickle) shape, smaller: other widths, heads, layers, queries, blocks.
    "vgg_glove": dict(v_feat_dim=4098, t_feat_dim=300, hidden_dim=32, nheads=4, dim_feedforward=48,
                      num_recfw_layers=1, t2v_layers=3, enc_layers=1, dec_layers=3, num_queries=5, n_input_proj=3,
                      max_words_l=12, max_video_l=40, share_MLP=False, vocab_size=50, text_path="glove_pkl",
                      clip_len=0.17, video_sources=(("vgg", 4096),), num_recss_layers=2),
    # TACoS C3D + GloVe ids, normalised positions, text positions on.
    "c3d_glove_ids": dict(v_feat_dim=4098, t_feat_dim=300, hidden_dim=24, nheads=2, dim_feedforward=40,
                          num_recfw_layers=2, t2v_layers=1, enc_layers=2, dec_layers=2, num_queries=3, max_words_l=8,
                          max_video_l=30, share_MLP=True, vocab_size=20, text_path="glove_ids", clip_len=-1,
                          dataset_name="tacos", use_txt_pos=True, video_sources=(("c3d", 4096),)),
    # CLIP-only video, CLIP text, no FW/SS blocks, no aux loss, one decoder layer.
    "clip_plain": dict(v_feat_dim=514, t_feat_dim=512, hidden_dim=16, nheads=1, dim_feedforward=16,
                       num_recfw_layers=2, t2v_layers=1, enc_layers=1, dec_layers=1, num_queries=4, n_input_proj=1,
                       max_words_l=10, max_video_l=20, rec_fw=False, rec_ss=False, aux_loss=False,
                       clip_len=2.0, dataset_name="qvhighlights", video_sources=(("clip", 512),)),
}
TRAINING = {"loss_recfw_coef": 0.1, "loss_recss_coef": 0.1, "use_triplet": True, "rank_coef": 1.0}


def _write(tmp_path, name, seed=0, opt_json=False):
    torch.manual_seed(seed)
    model = MESM(MESMConfig(**CONFIGS[name])).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 400, gamma=0.5)
    path = save_mesm_checkpoint(tmp_path / name / "model_test_best.ckpt", model, TRAINING, epoch=7,
                                optimizer=optimizer, lr_scheduler=scheduler)
    if opt_json:  # the official eval reads opt.json beside the checkpoint (v_feat_dim without the tef there)
        ckpt = _read_back(path)
        options = {k: (str(v) if isinstance(v, torch.device) else v) for k, v in vars(ckpt.pop("opt")).items()}
        options["v_feat_dim"] -= 2
        (path.parent / "opt.json").write_text(json.dumps(options))
        torch.save(ckpt, path)
    return model, path


def _batch(config: MESMConfig, num_clips, seed=1):
    rng = np.random.default_rng(seed)
    n = sum(num_clips)
    lengths = np.repeat(rng.integers(6, config.max_video_l + 1, len(num_clips)), num_clips)
    width = int(lengths.max())
    video = np.zeros((n, width, config.v_feat_dim), np.float32)
    mask = np.zeros((n, width), bool)
    for i, length in enumerate(lengths):
        video[i, :length] = rng.standard_normal((length, config.v_feat_dim))
        mask[i, :length] = True
    words_len = rng.integers(3, config.max_words_l + 1, n)
    words = np.zeros((n, config.max_words_l, config.t_feat_dim), np.float32)
    for i, t in enumerate(words_len):
        words[i, :t] = rng.standard_normal((t, config.t_feat_dim))
    return (torch.from_numpy(video), torch.from_numpy(mask), torch.from_numpy(words), lengths, words_len)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_other_configurations_load_strictly_and_run(tmp_path, name):
    original, path = _write(tmp_path, name, opt_json=(name == "c3d_glove_ids"))
    model = load_mesm(path, device="cpu")
    assert model.config == original.config and not model.training
    c = model.config
    num_clips = [2, 1]
    video, mask, words, lengths, words_len = _batch(c, num_clips)
    # the same architecture (config equal, strict load) holding the same weights: the same forward
    saved = original.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        out = model(video_feat=video, video_mask=mask, words_feat=words, words_mask=None, num_clips=num_clips,
                    neg_index=torch.tensor([2, 2, 0]))
    assert out["pred_logits"].shape == (3, c.num_queries, 2) and out["saliency_scores"].shape == mask.shape
    for key in ("pred_logits", "pred_spans", "saliency_scores", "neg_saliency_scores"):
        assert torch.isfinite(out[key]).all()
    assert len(out.get("aux_outputs", [])) == (c.dec_layers - 1 if c.aux_loss else 0)

    # rows equal the same video run alone (correct attention mask), and the official layout is selectable
    with torch.no_grad():
        alone = model(video_feat=video[2:], video_mask=mask[2:], words_feat=words[2:], num_clips=[1])
    torch.testing.assert_close(out["pred_logits"][2], alone["pred_logits"][0], atol=1e-5, rtol=1e-4)
    model.official_batch_mask = True
    with torch.no_grad():
        model(video_feat=video, video_mask=mask, words_feat=words, num_clips=num_clips)

    # training branch and the criterion on it
    durations = lengths * (c.clip_len if c.clip_len > 0 else 1.0)
    moments = np.stack([durations * 0.2, durations * 0.6], axis=1)
    targets = build_targets(moments, durations, mask, num_clips, c.clip_len, rng=np.random.default_rng(0))
    targets["words_label"] = torch.randint(0, c.num_word_classes, (3, c.max_words_l))
    words_weight = torch.zeros(3, c.max_words_l, dtype=torch.long)
    for i, t in enumerate(words_len):
        words_weight[i, :t] = 1
    model.official_batch_mask = False
    out = model.train()(video_feat=video, video_mask=mask, words_feat=words, num_clips=num_clips, is_training=True,
                unknown_mask=torch.zeros(3, c.max_words_l, dtype=torch.bool), clip_mask=targets["clip_mask"],
                words_weight=words_weight, mlm_rng=np.random.default_rng(0))
    criterion = MESMCriterion(MESMLossConfig.from_options({**TRAINING, "dataset_name": c.dataset_name}, c))
    losses, total = criterion(out, targets, is_training=True)
    assert torch.isfinite(total) and ("loss_rec_fw" in losses) == c.rec_fw and ("loss_rec_ss" in losses) == c.rec_ss
    total.backward()

    # the registry view: raw features of two windows of one video, one query
    raw = np.random.default_rng(3).standard_normal((2, c.max_video_l + 5, c.video_feature_dim)).astype(np.float32)
    query = QueryInput(tokens=words[0, :words_len[0]].numpy(), rows_read=int(words_len[0]), rows_given=8)
    result = model.eval().predict_windows(raw, query, clip_len=1.0)
    assert result.windows.shape == (2, c.num_queries, 2) and result.saliency.shape == (2, c.max_video_l + 5)


def test_checkpoint_contents_are_the_official_format(tmp_path):
    _, path = _write(tmp_path, "vgg_glove")
    ckpt = _read_back(path)
    assert list(ckpt) == ["model", "optimizer", "lr_scheduler", "epoch", "opt"] and ckpt["epoch"] == 7
    opt = ckpt["opt"]
    assert isinstance(opt, argparse.Namespace) and opt.device == torch.device("cuda")
    assert (opt.v_feat_dim, opt.tokenizer_type, opt.load_vocab_pkl, opt.feat_files) == (4098, "GloVeNLTK", True,
                                                                                        ["vgg.hdf5"])
    assert len(ckpt["optimizer"]["param_groups"][0]["params"]) == len(ckpt["model"])
    assert any(".linear1_1." in k for k in ckpt["model"]) and "output_txt_proj.1.weight" in ckpt["model"]
    assert ckpt["model"]["output_txt_proj.1.weight"].shape[0] == 51  # GloVe: vocab_size + <unknown>
    assert official_options(MESMConfig(**CONFIGS["clip_plain"]))["feat_files"] == ["clip_image.hdf5"]


def test_mismatched_checkpoints_are_refused(tmp_path):
    model, path = _write(tmp_path, "vgg_glove")
    ckpt = _read_back(path)
    ckpt["opt"].nheads = 5
    torch.save(ckpt, tmp_path / "heads.ckpt")
    with pytest.raises(CheckpointError, match=r"hidden_dim \(32\) must be divisible by nheads \(5\)"):
        load_mesm(tmp_path / "heads.ckpt", device="cpu")
    ckpt["opt"].nheads = 4
    ckpt["opt"].tokenizer_type = "BERT"
    torch.save(ckpt, tmp_path / "tok.ckpt")
    with pytest.raises(CheckpointError, match="tokenizer_type"):
        load_mesm(tmp_path / "tok.ckpt", device="cpu")
    ckpt["opt"].tokenizer_type = "GloVeNLTK"
    del ckpt["model"]["transformer.decoder.layers.1.ca_v_proj.weight"]
    ckpt["model"]["transformer.decoder.layers.1.ca_qpos_proj.weight"] = torch.zeros(32, 32)
    torch.save(ckpt, tmp_path / "keys.ckpt")
    with pytest.raises(CheckpointError, match=r"1 missing \(transformer.decoder.layers.1.ca_v_proj.weight\); "
                                              r"1 unexpected \(transformer.decoder.layers.1.ca_qpos_proj.weight\)"):
        load_mesm(tmp_path / "keys.ckpt", device="cpu")
    ckpt = _read_back(path)
    ckpt["opt"].pre_norm = True
    torch.save(ckpt, tmp_path / "prenorm.ckpt")
    with pytest.raises(CheckpointError, match="pre_norm"):
        load_mesm(tmp_path / "prenorm.ckpt", device="cpu")
    with pytest.raises(CheckpointError, match="not a MESM checkpoint"):
        torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
        load_mesm(tmp_path / "other.ckpt", device="cpu")
