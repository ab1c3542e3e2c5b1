"""UniVTG shapes the reference fixture does not cover, against an independent re-derivation of the official
arithmetic (../shared/fixtures/univtg_reference/README.md: "Behaviour of the official model"), written here
with plain tensor operations from the checkpoint's tensors, not with our modules.

Covered: projector depth 1 and 3 (ReLU on every layer but the last one used), `use_txt_pos` (the text
"position" is LayerNorm(projected text + learned row), added to queries and keys), and `pre_norm`. The
official encoder layer has no pre-norm forward at all (`normalize_before=True` raises AttributeError in
model/transformer_encoder_droppath.py), so a pre-norm checkpoint can only come from our trainer; it follows
DETR's `forward_pre` (norm before attention and feed-forward, q = k = norm(x) + pos, v = norm(x)) and the
official final encoder LayerNorm built when `normalize_before` is set.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from univtg_core import load_model
from univtg_core.models.univtg import UniVTG, UniVTGConfig

HIDDEN, HEADS, VIDEO, TEXT, LAYERS = 32, 4, 12, 10, 2


def _layer_norm(x, state, prefix):
    return F.layer_norm(x, (x.shape[-1],), state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-5)


def _projection(x, state, prefix, depth):
    for i in range(depth):
        x = _layer_norm(x, state, f"{prefix}.{i}.LayerNorm")
        x = x @ state[f"{prefix}.{i}.net.1.weight"].T + state[f"{prefix}.{i}.net.1.bias"]
        if i < depth - 1:
            x = torch.relu(x)
    return x


def _sine(n, dim):
    """Positions (i + 1) / (n + 1e-6) * 2 pi of an unpadded row; sin on even features, cos on odd ones."""
    pos = torch.arange(1, n + 1, dtype=torch.float32) / (n + 1e-6) * (2 * math.pi)
    j = torch.arange(dim)
    angles = pos[:, None] / torch.pow(10000.0, (2 * (j // 2)).float() / dim)
    return torch.where(j % 2 == 0, torch.sin(angles), torch.cos(angles))


def _attention(q_in, k_in, v_in, state, prefix):
    w, b = state[f"{prefix}.in_proj_weight"], state[f"{prefix}.in_proj_bias"]
    q = q_in @ w[:HIDDEN].T + b[:HIDDEN]
    k = k_in @ w[HIDDEN : 2 * HIDDEN].T + b[HIDDEN : 2 * HIDDEN]
    v = v_in @ w[2 * HIDDEN :].T + b[2 * HIDDEN :]
    head = HIDDEN // HEADS
    split = [t.reshape(len(t), HEADS, head).transpose(0, 1) for t in (q, k, v)]
    weights = torch.softmax(split[0] @ split[1].transpose(1, 2) / math.sqrt(head), dim=-1)
    out = (weights @ split[2]).transpose(0, 1).reshape(len(q), HIDDEN)
    return out @ state[f"{prefix}.out_proj.weight"].T + state[f"{prefix}.out_proj.bias"]


def _feed_forward(x, state, prefix):
    hidden = F.gelu(x @ state[f"{prefix}.linear1.weight"].T + state[f"{prefix}.linear1.bias"])
    return hidden @ state[f"{prefix}.linear2.weight"].T + state[f"{prefix}.linear2.bias"]


def _conv_head(x, state, prefix):
    y = x.T[None]
    for i in range(3):
        y = F.conv1d(y, state[f"{prefix}.layers.{i}.weight"], state[f"{prefix}.layers.{i}.bias"], padding=1)
        if i < 2:
            y = torch.relu(y)
    return y[0].T


def reference_forward(state, src_vid, src_txt, depth, use_txt_pos, pre_norm):
    """One unpadded sample: (L, video+2) and (T, text) -> pred_logits (L,), pred_spans (L, 2), saliency (L,)."""
    vid = _projection(src_vid, state, "input_vid_proj", depth) + state["token_type_embeddings.weight"][1]
    txt = _projection(src_txt, state, "input_txt_proj", depth) + state["token_type_embeddings.weight"][0]
    pos_txt = torch.zeros_like(txt)
    if use_txt_pos:
        table = state["txt_position_embed.position_embeddings.weight"][: len(txt)]
        pos_txt = _layer_norm(txt + table, state, "txt_position_embed.LayerNorm")
    x = torch.cat([vid, txt])
    pos = torch.cat([_sine(len(vid), HIDDEN), pos_txt])
    for layer in range(LAYERS):
        p = f"transformer.encoder.layers.{layer}"
        if pre_norm:
            normed = _layer_norm(x, state, f"{p}.norm1")
            x = x + _attention(normed + pos, normed + pos, normed, state, f"{p}.self_attn")
            x = x + _feed_forward(_layer_norm(x, state, f"{p}.norm2"), state, p)
        else:
            x = _layer_norm(x + _attention(x + pos, x + pos, x, state, f"{p}.self_attn"), state, f"{p}.norm1")
            x = _layer_norm(x + _feed_forward(x, state, p), state, f"{p}.norm2")
    if pre_norm:
        x = _layer_norm(x, state, "transformer.encoder.norm")
    memory = x[: len(vid)]
    logits = torch.sigmoid(_conv_head(memory, state, "class_embed"))[:, 0]
    spans = torch.sigmoid(_conv_head(memory, state, "span_embed")) * torch.tensor([-1.0, 1.0])
    alpha = torch.softmax(txt @ state["weightedpool.weight"], dim=0)
    pooled = (alpha * txt).sum(0)
    saliency = F.cosine_similarity(vid, pooled[None], dim=-1)
    return logits, spans, saliency


def _checkpoint(tmp_path, depth=2, use_txt_pos=False, pre_norm=False):
    """A checkpoint of that shape, every parameter drawn at random (LayerNorms included, so that each one
    matters), with the official options beside its weights."""
    config = UniVTGConfig(video_dim=VIDEO, text_dim=TEXT, hidden_dim=HIDDEN, enc_layers=LAYERS, nheads=HEADS,
                          dim_feedforward=48, n_input_proj=depth, use_txt_pos=use_txt_pos, pre_norm=pre_norm,
                          max_q_l=8, dropout=0.0)
    torch.manual_seed(depth * 10 + use_txt_pos * 2 + pre_norm)
    state = {k: torch.randn_like(v) * (0.3 if v.ndim > 1 else 0.5) for k, v in UniVTG(config).state_dict().items()}
    opt = argparse.Namespace(model_id="univtg", nheads=HEADS, use_txt_pos=use_txt_pos, ctx_mode="video_tef",
                             dropout=0.0, clip_length=2.0)
    path = tmp_path / f"variant_{depth}_{use_txt_pos}_{pre_norm}.ckpt"
    torch.save({"model": state, "opt": opt}, path)
    return path, state


@pytest.mark.parametrize("depth, use_txt_pos, pre_norm", [(1, False, False), (3, False, False), (2, True, False),
                                                          (2, False, True), (3, True, True)])
def test_variant_matches_the_independent_derivation(tmp_path, depth, use_txt_pos, pre_norm):
    path, state = _checkpoint(tmp_path, depth, use_txt_pos, pre_norm)
    assert ("transformer.encoder.norm.weight" in state) == pre_norm
    assert f"input_vid_proj.{depth - 1}.net.1.weight" in state and f"input_vid_proj.{depth}.net.1.weight" not in state
    model = load_model(path, device="cpu")
    cfg = model.config
    assert (cfg.n_input_proj, cfg.use_txt_pos, cfg.pre_norm) == (depth, use_txt_pos, pre_norm)

    rng = np.random.default_rng(depth)
    raw_video = rng.normal(size=(9, VIDEO)).astype(np.float32)
    raw_text = rng.normal(size=(5, TEXT)).astype(np.float32)
    src_vid = torch.from_numpy(model.prepare_video(raw_video[None])[0])
    src_txt = torch.from_numpy(model.query_input(raw_text).tokens)
    with torch.no_grad():
        out = model(src_txt=src_txt[None], src_txt_mask=torch.ones(1, 5), src_vid=src_vid[None],
                    src_vid_mask=torch.ones(1, 9))
        logits, spans, saliency = reference_forward(state, src_vid, src_txt, depth, use_txt_pos, pre_norm)
    np.testing.assert_allclose(out["pred_logits"][0, :, 0].numpy(), logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["pred_spans"][0].numpy(), spans.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["saliency_scores"][0].numpy(), saliency.numpy(), atol=1e-5)


def test_the_switches_change_the_outputs(tmp_path):
    """Each derivation above would pass for a setting that did nothing: show that they do something."""
    path, state = _checkpoint(tmp_path, 2, True, False)
    rng = np.random.default_rng(0)
    src_vid = torch.from_numpy(rng.normal(size=(9, VIDEO + 2)).astype(np.float32))
    src_txt = torch.from_numpy(rng.normal(size=(5, TEXT)).astype(np.float32))
    with_pos = reference_forward(state, src_vid, src_txt, 2, True, False)[0]
    without = reference_forward(state, src_vid, src_txt, 2, False, False)[0]
    assert (with_pos - without).abs().max() > 1e-3
    state["transformer.encoder.norm.weight"] = torch.ones(HIDDEN)
    state["transformer.encoder.norm.bias"] = torch.zeros(HIDDEN)
    assert (reference_forward(state, src_vid, src_txt, 2, True, True)[0] - with_pos).abs().max() > 1e-3
