"""The query the encoder makes (`Query`: tokens for the models, CLIP's joint-space embedding for zero-shot),
and issue 11's token fidelity: a long text reaches a UniVTG checkpoint as the official 32-token sequence
(start + 30 BPE tokens + end, encoded as its own sequence), while zero-shot keeps CLIP's whole context.
Real encoder output (random-init ViT-B-32, no download), not synthetic joint-space vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from univtg_core import Grounder, Query, QueryError, VideoIndex, ground
from univtg_core.encoders import load_clip_encoder
from univtg_core.postprocess import l2_normalize, tef
from univtg_core.video import VideoInfo

# 38 words that are one BPE token each: 40 tokens with the start and end tokens
LONG = ("the man walks to the door and then he opens it and looks out at the street where a red car is parked "
        "next to a tall tree and a small dog sits by the side of road")


@pytest.fixture(scope="module")
def enc():
    return load_clip_encoder("ViT-B-32", weights="random", device="cpu", seed=0)


def _clip_sentence(enc, text: str) -> np.ndarray:
    """open_clip's own sentence embedding (77-token pass, end row through text_projection)."""
    with torch.no_grad():
        return enc.model.encode_text(enc.tokenizer([text]))[0].float().numpy()


def _official_rows(enc, text: str, keep_bpe: int = 30) -> np.ndarray:
    """The official extractor's rows, built independently: tokenize, keep start + the first `keep_bpe` BPE
    tokens + end, run that sequence through the text transformer, take every row after ln_final."""
    m = enc.model
    bpe = enc.tokenizer.encode(text)
    full = enc.tokenizer([text])[0]
    ids = torch.tensor([[int(full[0])] + bpe[:keep_bpe] + [int(full.max())]])
    n = ids.shape[1]
    with torch.no_grad():
        x = m.token_embedding(ids) + m.positional_embedding[:n]
        x = m.transformer(x, attn_mask=m.attn_mask[:n, :n])
        return m.ln_final(x)[0].numpy()


def _cos(a, b) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_encoder_query_carries_tokens_and_the_joint_space_embedding(enc):
    text = "a dog runs on the beach"
    q = enc.encode_query(text)
    assert isinstance(q, Query) and q.text == text and q.text_rows == len(q.tokens) == 8
    assert q.text_tokens == q.embedding_tokens == 8 and not q.text_cut
    np.testing.assert_allclose(q.tokens, enc.encode_text(text).tokens, atol=1e-6)
    assert _cos(q.embedding, _clip_sentence(enc, text)) > 0.9999
    # the end token row (before text_projection) is not in the joint space: what the old default misused
    assert abs(_cos(q.tokens[-1][: q.embedding.size], q.embedding)) < 0.5

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    feats = enc.encode_frames(frames)
    zero_shot = ground(feats, q, clip_len=2.0)
    same = ground(feats, q.tokens, clip_len=2.0, query_sentence=_clip_sentence(enc, text))
    np.testing.assert_allclose(zero_shot.saliency, same.saliency, atol=1e-5)
    with pytest.raises(QueryError, match="embedding"):
        ground(feats, q.tokens, clip_len=2.0)  # a bare token array is refused in zero-shot, not misused

    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 2] = 255
    qi = enc.encode_query(image=image)
    assert qi.tokens.shape == (1, 512) and qi.text_rows == 0 and qi.text is None
    assert _cos(qi.embedding, enc.encode_image(image).sentence) > 0.9999
    both = enc.encode_query(text, image)
    assert both.tokens.shape == (9, 512) and both.text_rows == 8 and both.label == f'"{text}" + [image]'
    unit = [_clip_sentence(enc, text), enc.encode_image(image).sentence]
    expected = np.mean([u / np.linalg.norm(u) for u in unit], axis=0)
    np.testing.assert_allclose(both.embedding, expected, atol=1e-5)


def test_a_long_text_is_encoded_cut_for_the_model_and_whole_for_zero_shot(enc):
    assert len(enc.tokenizer.encode(LONG)) == 38
    whole = enc.encode_query(LONG)
    cut = enc.encode_query(LONG, token_limit=32)
    assert whole.tokens.shape == (40, 512) and cut.tokens.shape == (32, 512)
    assert (cut.text_rows, cut.text_tokens, cut.text_cut) == (32, 40, True)
    np.testing.assert_allclose(cut.tokens, _official_rows(enc, LONG), atol=1e-5)
    # causal attention: the first 31 rows are the whole sentence's, the end row is not
    np.testing.assert_allclose(cut.tokens[:31], whole.tokens[:31], atol=1e-5)
    assert np.abs(cut.tokens[31] - whole.tokens[39]).max() > 1e-2
    assert np.abs(cut.tokens[31] - whole.tokens[31]).max() > 1e-2
    np.testing.assert_allclose(cut.embedding, whole.embedding, atol=1e-6)  # CLIP's full context for zero-shot


def test_a_40_token_query_reaches_the_univtg_checkpoint_as_the_official_32_token_sequence(enc, univtg_model):
    rng = np.random.default_rng(1)
    n = 40
    feats = rng.normal(size=(n, 512)).astype(np.float32)
    info = VideoInfo(path="synthetic.mp4", duration=n * 2.0, fps=25.0, n_frames=n * 50, width=64, height=36,
                     backend="none")
    index = VideoIndex("synthetic.mp4", "0" * 64, info, 2.0, enc.fingerprint, feats)
    grounder = Grounder(enc, univtg_model)
    assert grounder.text_token_limit == 32
    pred = grounder.query(index, text=LONG)

    # the official construction: 32 official rows, normalised as the official dataset, the official forward
    rows = l2_normalize(_official_rows(enc, LONG))
    video = np.concatenate([l2_normalize(feats), tef(n)], axis=1)
    with torch.no_grad():
        out = univtg_model(src_txt=torch.from_numpy(rows)[None], src_txt_mask=torch.ones(1, 32),
                           src_vid=torch.from_numpy(video)[None], src_vid_mask=torch.ones(1, n))
    official = out["saliency_scores"][0].numpy()
    np.testing.assert_allclose(pred.saliency, official, atol=1e-5)
    record = pred.to_dict()
    assert (record["tokens_read"], record["query_tokens"], record["query_cut"]) == (32, 40, True)
    # zero-shot reads CLIP's whole context: not cut
    zero_shot = Grounder(enc).query(index, text=LONG)
    assert (zero_shot.tokens_read, zero_shot.query_cut) == (40, False)
