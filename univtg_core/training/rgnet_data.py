"""RGNet's data rule (rgnet/ego4d_mad_dataloader.py `StartEndDataset`, training branch) and its data setup.

One training item is one query of one long video, cut into RGNet's window grid (windows of `max_v_l` frames,
stride half of it, the first one half a window; `models.rgnet_inference.window_grid`):

- positive windows: indices floor(s / stride) .. ceil(e / stride) with s, e the moment in frames
  (timestamps / clip_length, capped at the video's length, swapped when reversed): exactly the windows the
  moment overlaps. One is drawn with weights Normal-pdf(index - mean index), favouring the middle ones (more
  likely to hold the whole moment);
- a negative window: drawn uniformly from the other windows of the same video;
- span label: the moment clipped to the drawn window, minus its start, / its valid length, as (center,
  width); saliency: one frame inside [floor(start), ceil(end)) and one outside; the adapter loss's span
  proposal [floor(start), ceil(end)).

A batch of B such items becomes an `RGNetBatch`; the recipe's step crosses each query with the B positive
windows (`rgnet_losses.cross_pairs`, --winret) and runs the negative windows (--neg_loss). Video features are
used raw (the official dataset computes a normalised copy and returns the raw one); text tokens are cut to
`max_q_l` and normalised (x / (||x|| + 1e-5)) unless --no_norm_tfeat, the sentence feature always.

Annotations: jsonl in CONE's keys (`query_id`, `video_id` / `clip_id`, `timestamps`, `duration`) or ours
(`qid`, `vid`, `relevant_windows`); both are read into ours.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models.rgnet_inference import window_grid
from ..postprocess import l2_normalize
from .data import DataError, FeatureStore, check_records, load_jsonl, raise_if_missing
from .rgnet_losses import RGNetBatch

logger = logging.getLogger(__name__)

TOKEN_FIELDS = ("token_features", "last_hidden_state")
SENTENCE_FIELDS = ("cls_features", "eot_features", "pooler_output")


# ------------------------------------------------------------------------------------------- annotations
def from_cone(record: dict[str, Any]) -> dict[str, Any]:
    """A CONE-style record (query_id, video_id / clip_id, timestamps, duration) in our keys; ours unchanged.
    The features are looked up by `clip_id` when present (the official loader does), else by `video_id`."""
    if "qid" in record and "vid" in record:
        return record
    if "query_id" not in record or ("video_id" not in record and "clip_id" not in record):
        return record  # check_records names what is missing
    out = dict(record)
    out["qid"] = record["query_id"]
    out["vid"] = str(record.get("clip_id", record.get("video_id")))
    if "timestamps" in record and "relevant_windows" not in record:
        start, end = (float(t) for t in record["timestamps"])
        out["relevant_windows"] = [[min(start, end), max(start, end)]]
    return out


def read_records(path: str, need_labels: bool) -> list[dict[str, Any]]:
    records = [from_cone(r) for r in load_jsonl(path)]
    check_records(records, path, need_labels=need_labels)
    return records


# ------------------------------------------------------------------------------------------- the data rule
def positive_windows(start: float, end: float, n_frames: int, max_v_l: int) -> list[int]:
    """Window indices the moment [start, end] (frames) overlaps, as the official training computes them."""
    stride = int(max_v_l / 2)
    start, end = sorted((float(start), float(end)))
    start, end = min(n_frames, start), min(n_frames, end)
    return list(range(math.floor(start / stride), math.ceil(end / stride) + 1))


def negative_windows(positives: Sequence[int], n_frames: int, max_v_l: int) -> list[int]:
    """The video's other windows (where negatives are drawn)."""
    return sorted(set(range(len(window_grid(n_frames, max_v_l)))) - set(positives))


def positive_weights(positives: Sequence[int]) -> np.ndarray:
    """Normal-pdf(index - mean index), normalised: the middle windows are drawn more often."""
    offsets = np.asarray(positives, dtype=np.float64) - np.mean(positives)
    weights = np.exp(-0.5 * offsets**2)
    return weights / weights.sum()


def window_targets(start: float, end: float, index: int, n_frames: int, max_v_l: int) -> dict[str, Any]:
    """The moment (frames) clipped to window `index` of the grid: the span label (center, width) / the
    window's valid length, the frames inside / outside it (saliency pools), the proposal [floor, ceil)."""
    nominal = (index - 1) * int(max_v_l / 2)  # the grid's first window starts half a window before the video
    w_start, w_end = max(nominal, 0), min(nominal + max_v_l, n_frames)
    length = w_end - w_start
    s = max(nominal, start) - w_start
    e = min(nominal + max_v_l, end) - w_start
    inside = list(range(math.floor(s), math.ceil(e))) or [math.floor(s)]
    outside = sorted(set(range(length)) - set(inside)) or [0]
    return {"span": ((s + e) / 2 / length, (e - s) / length), "inside": inside, "outside": outside,
            "proposal": (math.floor(s), math.ceil(e)), "bounds": (w_start, w_end)}


# ------------------------------------------------------------------------------------------- datasets
class RGNetFeatures:
    """A run's features: raw video rows per video (every `input_fps_reduction`-th), the query's tokens and
    sentence feature (as stored; the callers normalise)."""

    def __init__(self, store: FeatureStore, sentence_store: FeatureStore | None, opt: argparse.Namespace):
        self.store = store
        self.sentence_store = sentence_store or store
        self.reduction = int(opt.input_fps_reduction)

    def video(self, vid: str) -> np.ndarray:
        return self.store.video(str(vid))[:: self.reduction]

    def length(self, vid: str) -> int:
        return self.store.video_length(str(vid), self.reduction)

    def window(self, vid: str, start: int, end: int) -> np.ndarray:
        """Rows [start, end) of `video(vid)`; .h5 files and feature stores read only those rows."""
        return np.ascontiguousarray(self.store.video_window(str(vid), int(start), int(end), self.reduction))

    @staticmethod
    def _first(store: FeatureStore, qid: Any, fields: Sequence[str]) -> np.ndarray:
        errors = []
        for field in fields:
            try:
                return store.query(qid, field)
            except DataError as exc:
                errors.append(str(exc))
        raise DataError(f"query {qid!r}: none of {', '.join(fields)} could be read ({errors[-1]})")

    def tokens(self, qid: Any) -> np.ndarray:
        return self._first(self.store, qid, TOKEN_FIELDS)

    def sentence(self, qid: Any) -> np.ndarray:
        """(E,) the sentence feature: a (1, E) or (E,) entry (an .h5 of plain per-query arrays holds tokens
        only, so several rows mean the sentence features are elsewhere)."""
        found = self._first(self.sentence_store, qid, SENTENCE_FIELDS)
        if len(found) != 1:
            raise DataError(f"query {qid!r}: the sentence feature read has {len(found)} rows (token features?); "
                            "give one row per query (cls_features / pooler_output), or --sentence_feat_dir")
        return found[0]


class RGNetTrainingSet(Dataset):
    """One item per query: its tokens, one positive and one negative window of its video, the targets."""

    item_name = "queries"

    def __init__(self, records: Sequence[dict], features: RGNetFeatures, opt: argparse.Namespace):
        self.records = list(records)
        self.features = features
        self.max_v_l = int(opt.max_v_l)
        self.max_q_l = int(opt.max_q_l)
        self.clip_length = float(opt.clip_length)
        self.normalize_text = not opt.no_norm_tfeat

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        n = self.features.length(record["vid"])
        start, end = (float(t) / self.clip_length for t in record["relevant_windows"][0])
        start, end = min(n, min(start, end)), min(n, max(start, end))
        grid = window_grid(n, self.max_v_l)
        positives = positive_windows(start, end, n, self.max_v_l)
        negatives = negative_windows(positives, n, self.max_v_l)
        if not negatives:
            raise DataError(f"query {record['qid']!r}: its moment overlaps every window of video {record['vid']!r} "
                            f"({n} frames, windows of {self.max_v_l}); no negative window can be drawn")
        chosen = int(np.random.choice(positives, p=positive_weights(positives)))
        targets = window_targets(start, end, chosen, n, self.max_v_l)
        negative = grid[random.choice(negatives)]
        tokens = self.features.tokens(record["qid"])[: self.max_q_l]
        if self.normalize_text:
            tokens = l2_normalize(tokens)
        s, e = grid[chosen]
        return {
            "meta": {"qid": record["qid"], "vid": record["vid"], "query": record.get("query"),
                     "window": int(chosen), "duration": record.get("duration")},
            "query_feat": torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32)),
            "query_cls": torch.from_numpy(l2_normalize(self.features.sentence(record["qid"])[None])[0]),
            "window_feat": torch.from_numpy(self.features.window(record["vid"], s, e)),
            "neg_window_feat": torch.from_numpy(self.features.window(record["vid"], negative[0], negative[1])),
            "span": torch.tensor([targets["span"]], dtype=torch.float32),
            "saliency_pos": random.sample(targets["inside"], k=1)[0],
            "saliency_neg": random.sample(targets["outside"], k=1)[0],
            "proposal": targets["proposal"],
        }


class RGNetEvalSet:
    """The evaluation queries, for whole-video inference (one query at a time over all its video's windows)."""

    item_name = "queries"

    def __init__(self, records: Sequence[dict], features: RGNetFeatures):
        self.records = list(records)
        self.features = features

    def __len__(self) -> int:
        return len(self.records)


def _pad(values: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    from .data import pad_sequences

    return pad_sequences(values)


def collate(items: Sequence[dict]) -> tuple[list[dict], dict[str, Any]]:
    """The official start_end_collate: padded (tensor, mask) pairs, LongTensor saliency labels."""
    metas = [item["meta"] for item in items]
    batch = {key: _pad([item[key] for item in items]) for key in ("query_feat", "window_feat", "neg_window_feat")}
    batch["query_cls"] = torch.stack([item["query_cls"] for item in items])
    batch["span_labels"] = torch.stack([item["span"] for item in items])
    batch["saliency_pos_labels"] = torch.tensor([[item["saliency_pos"]] for item in items], dtype=torch.long)
    batch["saliency_neg_labels"] = torch.tensor([[item["saliency_neg"]] for item in items], dtype=torch.long)
    batch["span_proposal"] = torch.tensor([item["proposal"] for item in items], dtype=torch.int32)
    return metas, batch


def prepare_batch(batch: dict, device: torch.device, non_blocking: bool = False) -> tuple[dict, dict]:
    """({"batch": RGNetBatch on device}, {}): the recipe's step reads the batch (its targets included)."""
    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=non_blocking)

    rg = RGNetBatch(
        query_feat=move(batch["query_feat"][0]), query_mask=move(batch["query_feat"][1]),
        query_cls=move(batch["query_cls"]), window_feat=move(batch["window_feat"][0]),
        window_mask=move(batch["window_feat"][1]), span_labels=move(batch["span_labels"]),
        saliency_pos_labels=move(batch["saliency_pos_labels"]), saliency_neg_labels=move(batch["saliency_neg_labels"]),
        span_proposal=move(batch["span_proposal"]), neg_window_feat=move(batch["neg_window_feat"][0]),
        neg_window_mask=move(batch["neg_window_feat"][1]))
    return {"batch": rg}, {}


# ------------------------------------------------------------------------------------------- the run's data
def _widths(opt: argparse.Namespace, features: RGNetFeatures, first: dict) -> None:
    """Fill (or check) the feature widths from the files."""
    found = {"v_motion_feat_dim": features.window(first["vid"], 0, 1).shape[1],
             "t_feat_dim": features.tokens(first["qid"]).shape[1],
             "v_appear_feat_dim": features.sentence(first["qid"]).shape[0]}
    if found["v_appear_feat_dim"] != found["v_motion_feat_dim"]:
        raise DataError(f"the sentence features are {found['v_appear_feat_dim']} wide but the video features "
                        f"{found['v_motion_feat_dim']}: CLIP matching needs them in one space (query {first['qid']!r})")
    for name, value in found.items():
        given = getattr(opt, name)
        if given is not None and int(given) != value:
            raise DataError(f"--{name} {given} does not match the feature files ({value} wide)")
        setattr(opt, name, int(value))


def setup_data(opt: argparse.Namespace, recipe, progress: bool = True):
    """The recipe's data setup: annotations (CONE's keys or ours), the feature files checked, widths from them,
    the training set (the data rule above) and the evaluation queries. Returns the trainer's RunData."""
    from .data_setup import RunData

    train_records = []
    for path in opt.train_path or []:
        train_records += read_records(path, need_labels=True)
    eval_records = read_records(opt.eval_path, need_labels=False) if opt.eval_path else None
    if opt.data_ratio != 1:
        train_records = train_records[: int(len(train_records) * opt.data_ratio)]
        if eval_records is not None:
            eval_records = eval_records[: int(len(eval_records) * opt.data_ratio)]
    if not train_records:
        raise DataError("no training annotations: pass --train_path")
    store = FeatureStore([opt.motion_feat_dir], opt.t_feat_dir, normalize_video=False, normalize_text=False,
                         cache_mb=opt.cache_mb)
    sentence_store = None
    if opt.sentence_feat_dir:
        sentence_store = FeatureStore([], opt.sentence_feat_dir, normalize_video=False, normalize_text=False)
    raise_if_missing(store, train_records, ", ".join(opt.train_path), queries=False)
    if eval_records is not None:
        raise_if_missing(store, eval_records, opt.eval_path, queries=False)
    features = RGNetFeatures(store, sentence_store, opt)
    _widths(opt, features, train_records[0])
    saved_options = dict(vars(opt))  # opt.json: before clip_length is scaled (as the official parser writes it)
    opt.clip_length = float(opt.clip_length) * int(opt.input_fps_reduction)
    if opt.use_cache > 0:
        store.preload(train_records + (eval_records or []), queries=False, progress=progress)
    train_dataset = recipe.make_dataset(train_records, features, opt, train=True)
    eval_dataset = recipe.make_dataset(eval_records, features, opt, train=False) if eval_records else None
    labelled = eval_records is not None and all(r.get("relevant_windows") for r in eval_records)
    return RunData(train_records, eval_records, store, train_dataset, eval_dataset, saved_options, None, labelled)
