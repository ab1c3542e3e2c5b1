"""MESM's data rule on our annotation layout: one item is a video with all its queries (SS-MESM contrasts the
queries of one video), prepared as MESM's official dataset prepares it.

- Video: each source (`--feat_files`) L2-normalised on its own, cut to the shortest, concatenated, mean-pooled
  to `max_video_l` rows when longer, tef appended (`models.mesm_inputs.prepare_video`).
- Text: the query's per-token rows as stored (start + tokens + end, as our extractor writes them), cut as the
  official extractor cut them (start + at most max_words_l - 2 tokens + end); the model normalises them.
- Targets: the GT window in seconds and as fractions of the annotation's duration; the GT frames
  int(start / clip_len) .. int(end / clip_len) (fractions x L with clip_len -1), not rescaled when a video was
  pooled (official); `contra_samples` frames inside and outside (numpy's global RNG, as the official
  dataset draws them); for FW-MESM the masked-word labels of the sentence's CLIP BPE tokens (classes from
  CLIP_tokenized_count.txt) and its word weights (2 for content words, 1 otherwise, 0 for start/end).
- A video's queries are sorted by window start; `max_gather_size` > 0 splits them into items of at most
  that many (shuffled first, as the official code does).

Word weights: the official code tags the BPE tokens with NLTK's POS tagger (nouns, verbs, adjectives and
adverbs weigh 2). NLTK is not a dependency here; without it a function-word list decides (what is not a
determiner, preposition, pronoun, conjunction, auxiliary, number or punctuation weighs 2). The weights only
set how likely each word is to be masked.
"""

from __future__ import annotations

import argparse
import logging
import random
import string
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models.mesm import MESMConfig
from ..models.mesm_inputs import prepare_video, query_rows
from ..query import Query
from .data import DataError, FeatureStore, pad_sequences
from .mesm_losses import clip_mask_from_moments, sample_contrast_frames
from .mesm_vocab import CLIP_COUNT_FILE, clip_word_classes, clip_word_labels

logger = logging.getLogger(__name__)

FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every no all both either neither another such
i me my mine myself you your yours yourself he him his himself she her hers herself it its itself we us our ours
ourselves they them their theirs themselves who whom whose which what
of in on at to from by with without into onto over under above below up down out off about around through across
along against between among behind beside besides near after before during until while since than as via per
toward towards upon within beyond inside outside
and or but nor so yet if then because although though unless whether
is am are was were be been being do does did doing have has had having will would shall should can could may might
must 's 't 're 've 'm 'll 'd not
""".split())


def word_weight(token: str) -> int:
    """2 for a content word (noun, verb, adjective, adverb), 1 otherwise: MESM's masking weight of a token."""
    word = token.replace("</w>", "").lower()
    if not word or all(ch in string.punctuation for ch in word) or word.isdigit() or word in FUNCTION_WORDS:
        return 1
    return 2


def _pos_weights(tokens: list[str]) -> list[int]:
    try:
        import nltk

        tags = nltk.pos_tag(tokens)
    except (ImportError, LookupError):
        return [word_weight(t) for t in tokens]
    return [2 if any(k in tag for k in ("NN", "VB", "JJ", "RB")) else 1 for _, tag in tags]


class WordLabeller:
    """Masked-word labels, unknown mask and masking weights of one sentence (the official CLIP tokenizer)."""

    def __init__(self, count_file: str | Path | None, vocab_size: int, max_words_l: int, with_labels: bool):
        from open_clip.tokenizer import SimpleTokenizer

        self.tokenizer = SimpleTokenizer()
        self.max_words_l = max_words_l
        self.classes = None
        if with_labels:
            if count_file is None or not Path(count_file).is_file():
                raise DataError(f"FW-MESM (--rec_fw) needs {CLIP_COUNT_FILE} in --ann_path "
                                f"({count_file or 'not given'}): write it with python -m "
                                "univtg_core.training.mesm_vocab TRAIN.jsonl --out DIR, then pass --ann_path DIR")
            self.classes = clip_word_classes(count_file, vocab_size)

    def __call__(self, sentence: str) -> dict[str, np.ndarray]:
        ids = self.tokenizer.encode(str(sentence))[: self.max_words_l - 2]
        tokens = [self.tokenizer.decoder[i].replace("</w>", "") for i in ids]
        weights = np.zeros(self.max_words_l, dtype=np.int64)
        weights[1 : len(ids) + 1] = _pos_weights(tokens) if tokens else []
        out = {"words_weight": weights, "n_tokens": np.int64(len(ids) + 2)}
        if self.classes is not None:
            out["words_label"], out["unknown_mask"] = clip_word_labels(ids, self.classes, self.max_words_l)
        return out


def _first_window(record: dict) -> float:
    windows = record.get("relevant_windows") or [[0.0, 0.0]]
    return float(windows[0][0])


def group_by_video(records: Sequence[dict], max_gather_size: int = -1, shuffle: bool = False) -> list[list[dict]]:
    """The items: each video's queries (sorted by window start), split into chunks of `max_gather_size`."""
    groups: OrderedDict[str, list[dict]] = OrderedDict()
    for record in records:
        groups.setdefault(str(record["vid"]), []).append(record)
    items = []
    for group in groups.values():
        if max_gather_size > 0:
            if shuffle:
                random.shuffle(group)
            chunks = [group[i : i + max_gather_size] for i in range(0, len(group), max_gather_size)]
        else:
            chunks = [group]
        items += [sorted(chunk, key=_first_window) for chunk in chunks]
    return items


class MESMVideoDataset(Dataset):
    """One item per video (or per `max_gather_size` of its queries): features, queries and MESM's targets."""

    item_name = "videos"

    def __init__(self, records: Sequence[dict], store: FeatureStore, config: MESMConfig, *, train: bool,
                 load_labels: bool = True, contra_samples: int = 2, max_windows: int = 5,
                 max_gather_size: int = -1, count_file: str | Path | None = None):
        self.store = store
        self.config = config
        self.train = train
        self.load_labels = load_labels
        self.contra_samples = contra_samples if train else 0
        self.max_windows = max_windows
        self.items = group_by_video(records, max_gather_size, shuffle=train)
        self.labeller = WordLabeller(count_file, config.vocab_size, config.max_words_l,
                                     with_labels=train and config.rec_fw)
        self._mismatch_warned = False

    def __len__(self) -> int:
        return len(self.items)

    def _video(self, vid: str) -> np.ndarray:
        sources = [self.store.dir_features(d, vid) for d in self.store.v_feat_dirs]
        widths = [d for _, d in self.config.video_sources]
        for path, feats, width in zip(self.store.v_feat_dirs, sources, widths):
            if feats.shape[1] != width:
                raise DataError(f"video features of {vid!r} in {path} are {feats.shape[1]} wide, but the model "
                                f"reads {width} there ({self.config.video_sources})")
        return prepare_video(sources, self.config)

    def _query(self, record: dict) -> np.ndarray:
        rows = self.store.query(record["qid"], feat_dir=record.get("t_feat_dir"))
        if rows.shape[1] != self.config.t_feat_dim:
            raise DataError(f"query features of qid {record['qid']!r} are {rows.shape[1]} wide, but t_feat_dim is "
                            f"{self.config.t_feat_dim}")
        return query_rows(Query(rows, text_rows=len(rows)), self.config).tokens

    def _windows(self, record: dict) -> np.ndarray:
        duration = float(record["duration"])
        windows = np.clip(np.asarray(record["relevant_windows"], dtype=np.float64).reshape(-1, 2), 0, duration)
        keep = self.max_windows if self.config.dataset_name == "qvhighlights" else 1
        return windows[:keep]

    def __getitem__(self, index: int) -> dict[str, Any]:
        group = self.items[index]
        video = torch.from_numpy(self._video(str(group[0]["vid"])))
        length = len(video)
        queries = []
        for record in group:
            query: dict[str, Any] = {"meta": record, "words_feat": torch.from_numpy(self._query(record))}
            query.update(self.labeller(record.get("query", "")))
            if self.labeller.classes is not None and int(query["n_tokens"]) != min(len(query["words_feat"]),
                                                                                  self.config.max_words_l):
                self._warn_mismatch(record, len(query["words_feat"]), int(query["n_tokens"]))
            if self.load_labels and record.get("relevant_windows"):
                windows = self._windows(record)
                duration = float(record["duration"])
                lengths = [length] * len(windows)
                frames = clip_mask_from_moments(windows, [duration] * len(windows), lengths, self.config.clip_len,
                                                length).any(axis=0)
                query.update(windows=windows, duration=duration, clip_mask=frames)
                if self.contra_samples > 0:
                    rng = np.random.default_rng(np.random.randint(2**31))
                    pos, neg = sample_contrast_frames(frames[None], [length], self.contra_samples, rng)
                    query.update(pos_idx=pos[0], neg_idx=neg[0])
            queries.append(query)
        return {"video_feat": video, "queries": queries, "train": self.train,
                "multi_window": self.config.dataset_name == "qvhighlights"}

    def _warn_mismatch(self, record: dict, rows: int, tokens: int) -> None:
        if not self._mismatch_warned:
            logger.warning("query features of qid %r have %d rows but its text has %d CLIP tokens with start and end: "
                           "masked-word labels will not line up with the rows (extract the query features with "
                           "python -m univtg_core.training.extract); further mismatches are not reported",
                           record["qid"], rows, tokens)
            self._mismatch_warned = True


def _stack(values: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.stack(values), dtype=dtype)


def collate(items: Sequence[dict]) -> tuple[list[dict], dict[str, Any]]:
    """The official collate: every query is a row holding its video's features; `num_clips` counts the rows of
    each video. One meta per row."""
    metas, videos, words, num_clips = [], [], [], []
    per_query: dict[str, list] = {k: [] for k in ("words_weight", "words_label", "unknown_mask", "windows",
                                                   "duration", "clip_mask", "pos_idx", "neg_idx")}
    for item in items:
        num_clips.append(len(item["queries"]))
        for query in item["queries"]:
            metas.append(query["meta"])
            videos.append(item["video_feat"])
            words.append(query["words_feat"])
            for key in per_query:
                if key in query:
                    per_query[key].append(query[key])
    batch: dict[str, Any] = {"video_feat": pad_sequences(videos), "words_feat": pad_sequences(words),
                             "num_clips": torch.tensor(num_clips, dtype=torch.long),
                             "train": bool(items[0]["train"]), "multi_window": bool(items[0]["multi_window"])}
    batch["words_weight"] = _stack(per_query["words_weight"], torch.long)
    for key, dtype in (("words_label", torch.long), ("unknown_mask", torch.bool), ("pos_idx", torch.long),
                       ("neg_idx", torch.long)):
        if len(per_query[key]) == len(metas):
            batch[key] = _stack(per_query[key], dtype)
    if len(per_query["windows"]) == len(metas):
        width = batch["video_feat"][0].shape[1]
        masks = np.zeros((len(metas), width), dtype=bool)
        for row, frames in enumerate(per_query["clip_mask"]):
            masks[row, : len(frames)] = frames
        batch["clip_mask"] = torch.from_numpy(masks)
        batch["windows"] = per_query["windows"]
        batch["duration"] = torch.tensor(per_query["duration"], dtype=torch.float32)
    return metas, batch


def prepare_batch(batch: dict, device: torch.device,
                  non_blocking: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Forward arguments (the official forward's names) and criterion targets on `device`."""
    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=non_blocking)

    video, video_mask = batch["video_feat"]
    words, words_mask = batch["words_feat"]
    inputs: dict[str, Any] = {"video_feat": move(video), "video_mask": move(video_mask.bool()),
                              "words_feat": move(words), "words_mask": move(words_mask.bool()),
                              "num_clips": batch["num_clips"]}
    training = batch["train"]
    if training:
        inputs["is_training"] = True
        inputs["words_weight"] = batch["words_weight"]  # read on the CPU (numpy draws the masked words)
        if "words_label" in batch:
            inputs["unknown_mask"] = move(batch["unknown_mask"])
            inputs["clip_mask"] = move(batch["clip_mask"])
    targets: dict[str, Any] = {}
    if "windows" in batch:
        durations = batch["duration"]
        norm = [torch.as_tensor(w, dtype=torch.float32) / d for w, d in zip(batch["windows"], durations.tolist())]
        if batch["multi_window"]:  # QVHighlights: several windows per query, Hungarian matching
            targets["norm_moment"] = [move(n) for n in norm]
        else:
            targets["norm_moment"] = move(torch.stack([n[0] for n in norm]))
        targets.update(video_mask=inputs["video_mask"], clip_mask=move(batch["clip_mask"]),
                       num_clips=batch["num_clips"])
        for key in ("pos_idx", "neg_idx", "words_label"):
            if key in batch:
                targets[key] = move(batch[key])
    return inputs, targets


def dataset_for(records: Sequence[dict], store: FeatureStore, opt: argparse.Namespace, config: MESMConfig, *,
                train: bool, load_labels: bool = True) -> MESMVideoDataset:
    count_file = Path(opt.ann_path) / CLIP_COUNT_FILE if opt.ann_path else None
    return MESMVideoDataset(records, store, config, train=train, load_labels=load_labels,
                            contra_samples=opt.contra_samples, max_windows=opt.max_windows,
                            max_gather_size=opt.max_gather_size, count_file=count_file)
