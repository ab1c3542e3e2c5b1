"""MESM's criterion (model/criterion.py + model/matcher.py of lntzm/MESM), written from its description.

Terms (names as the official loss dict):
- matching: per query, the prediction slot minimising set_cost_span * L1(c, w) - set_cost_giou * GIoU
  - set_cost_class * p(foreground) (one GT window per query; QVHighlights-style several: Hungarian);
- `loss_span` (mean L1 over centre and width), `loss_giou` (mean 1 - GIoU) of the matched slot;
- `loss_label`: cross-entropy over all slots, foreground at the matched slot, background weighted
  `eos_coef`, the *plain mean* over N x num_queries (not divided by the weights); `class_error` is logged;
- `loss_saliency`: negative-pair term (-log(1 - sigmoid(neg saliency)) summed over valid frames) + rank
  contrastive (InfoNCE with tau 0.5 over [saliency, neg saliency]) / rank_coef (+ triplet margin loss);
- `loss_rec_ss` (SS-MESM): InfoNCE between the mean projected video over the GT frames and the mean of the
  expanded words, positives the queries of the same video whose GT windows have GIoU >= iou_gamma;
- `loss_rec_fw` (FW-MESM, training only): label-smoothed (0.1) NLL of the masked-word head over all valid
  tokens, averaged per sentence then over the batch; `rec_fw_acc` is logged;
- aux decoder layers repeat span/giou/label with suffix `_<i>`, each matched on its own.

Targets (`criterion(outputs, targets)`), as tensors on the outputs' device (see `build_targets`):
  norm_moment (N, 2) GT [start, end] / duration (or a list of (G_i, 2) for several windows per query),
  video_mask (N, L) bool, clip_mask (N, L) bool (GT frames), num_clips (V,) queries per video (consecutive),
  optional: saliency_label (N, L) graded labels (else clip_mask), pos_idx / neg_idx (N, P) frames inside /
  outside the window (triplet), words_label (N, T) masked-word labels (rec_fw, training).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from univtg_core.models._blocks import span_cxw_to_xx, span_xx_to_cxw
from univtg_core.models.mesm import MESMConfig


@dataclass(frozen=True)
class MESMLossConfig:
    """Loss settings; names and defaults are MESM's options (its argparse defaults)."""

    set_cost_span: float = 10.0
    set_cost_giou: float = 1.0
    set_cost_class: float = 4.0
    loss_span_coef: float = 10.0
    loss_giou_coef: float = 1.0
    loss_label_coef: float = 4.0
    loss_saliency_coef: float = 1.0
    eos_coef: float = 0.1
    loss_recfw_coef: float = 0.0
    loss_recss_coef: float = 0.0
    rank_coef: float = 12.0
    use_triplet: bool = False
    saliency_margin: float = 0.2
    iou_gamma: float = 0.9
    recss_tau: float = 0.5
    aux_loss: bool = True
    dec_layers: int = 2
    rec_fw: bool = True
    rec_ss: bool = True
    multi_clip: bool = False  # QVHighlights: several GT windows per query, Hungarian matching

    def __post_init__(self) -> None:
        if self.set_cost_span == 0 and self.set_cost_giou == 0 and self.set_cost_class == 0:
            raise ValueError("MESM matching needs a non-zero cost: set_cost_span, set_cost_giou or set_cost_class")
        if self.rank_coef == 0:
            raise ValueError("MESM option rank_coef must not be 0 (the rank loss is divided by it)")
        if self.recss_tau <= 0:
            raise ValueError(f"MESM option recss_tau must be positive, got {self.recss_tau}")

    @classmethod
    def from_options(cls, opt: Mapping[str, Any] | None, model: MESMConfig | None = None) -> MESMLossConfig:
        """From MESM options (a checkpoint's opt or a config JSON); the architecture fields from the model."""
        opt = dict(opt or {})
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in opt.items() if k in names and v is not None}
        if model is not None:
            values.update(aux_loss=model.aux_loss, dec_layers=model.dec_layers, rec_fw=model.rec_fw,
                          rec_ss=model.rec_ss)
        dataset = opt.get("dataset_name", model.dataset_name if model is not None else None)
        values["multi_clip"] = dataset == "qvhighlights"
        return cls(**values)

    def weight_dict(self) -> dict[str, float]:
        weights = {"loss_span": self.loss_span_coef, "loss_giou": self.loss_giou_coef,
                   "loss_label": self.loss_label_coef, "loss_saliency": self.loss_saliency_coef}
        if self.aux_loss:
            for i in range(self.dec_layers - 1):
                weights.update({f"loss_span_{i}": self.loss_span_coef, f"loss_giou_{i}": self.loss_giou_coef,
                                f"loss_label_{i}": self.loss_label_coef})
        if self.rec_fw:
            weights["loss_rec_fw"] = self.loss_recfw_coef
        if self.rec_ss:
            weights["loss_rec_ss"] = self.loss_recss_coef
        return {k: float(v) for k, v in weights.items()}


def temporal_iou_matrix(spans1: torch.Tensor, spans2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2) x (M, 2) [start, end] -> IoU and union, (N, M) each."""
    inter = (torch.min(spans1[:, None, 1], spans2[:, 1]) - torch.max(spans1[:, None, 0], spans2[:, 0])).clamp(min=0)
    union = (spans1[:, 1] - spans1[:, 0])[:, None] + (spans2[:, 1] - spans2[:, 0]) - inter
    return inter / union, union


def generalized_iou_matrix(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """(N, 2) x (M, 2) -> (N, M) generalised temporal IoU (float32, as the official)."""
    spans1, spans2 = spans1.float(), spans2.float()
    iou, union = temporal_iou_matrix(spans1, spans2)
    enclosing = (torch.max(spans1[:, None, 1], spans2[:, 1]) - torch.min(spans1[:, None, 0], spans2[:, 0])).clamp(min=0)
    return iou - (enclosing - union) / enclosing


def _windows_per_query(norm_moment) -> list[torch.Tensor]:
    if isinstance(norm_moment, torch.Tensor):
        return [m[None] for m in norm_moment] if norm_moment.ndim == 2 else list(norm_moment)
    return [m["moments"] if isinstance(m, Mapping) else torch.as_tensor(m) for m in norm_moment]


class MESMMatcher(nn.Module):
    """One prediction slot per GT window: argmin of the cost for one window, Hungarian for several."""

    def __init__(self, cost_span: float, cost_giou: float, cost_class: float):
        super().__init__()
        self.cost_span, self.cost_giou, self.cost_class = cost_span, cost_giou, cost_class

    def cost(self, outputs: Mapping[str, torch.Tensor], windows: torch.Tensor) -> torch.Tensor:
        """(N * nq) x (total windows) cost matrix."""
        prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
        spans = outputs["pred_spans"].flatten(0, 1)
        cost_span = torch.cdist(spans, span_xx_to_cxw(windows), p=1)
        cost_giou = -generalized_iou_matrix(span_cxw_to_xx(spans), windows)
        return self.cost_span * cost_span + self.cost_giou * cost_giou + self.cost_class * -prob[:, [0]]

    @torch.no_grad()
    def forward(self, outputs: Mapping[str, torch.Tensor], norm_moment, multi: bool = False):
        n, nq = outputs["pred_spans"].shape[:2]
        if not multi:
            windows = norm_moment if isinstance(norm_moment, torch.Tensor) else torch.stack(
                [w[0] for w in _windows_per_query(norm_moment)])
            c = self.cost(outputs, windows).view(n, nq, -1).cpu()
            return torch.stack([c[i, :, i].argmin() for i in range(n)])
        from scipy.optimize import linear_sum_assignment

        per_query = _windows_per_query(norm_moment)
        c = self.cost(outputs, torch.cat(per_query)).view(n, nq, -1).cpu()
        sizes = [len(w) for w in per_query]
        pairs = [linear_sum_assignment(block[i]) for i, block in enumerate(c.split(sizes, -1))]
        return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64)) for i, j in pairs]


class MESMCriterion(nn.Module):
    """`losses, total = criterion(outputs, targets, is_training=True)`, as the official Criterion returns them."""

    foreground_label = 0
    background_label = 1

    def __init__(self, config: MESMLossConfig):
        super().__init__()
        self.config = config
        self.weight_dict = config.weight_dict()
        self.matcher = MESMMatcher(config.set_cost_span, config.set_cost_giou, config.set_cost_class)
        empty_weight = torch.ones(2)
        empty_weight[-1] = config.eos_coef
        self.register_buffer("empty_weight", empty_weight)

    # -- matching-based terms ------------------------------------------------------------------------------
    def _matched(self, outputs, targets, indices):
        if self.config.multi_clip:
            batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
            slots = torch.cat([src for src, _ in indices])
            per_query = _windows_per_query(targets["norm_moment"])
            moments = torch.cat([w[j] for w, (_, j) in zip(per_query, indices)]).to(outputs["pred_spans"].device)
        else:
            batch = torch.arange(len(indices), device=outputs["pred_spans"].device)
            slots = indices.to(batch.device)
            moments = targets["norm_moment"]
        return (batch, slots), moments

    def loss_spans(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        idx, moments = self._matched(outputs, targets, indices)
        src = outputs["pred_spans"][idx]
        loss_span = F.l1_loss(src, span_xx_to_cxw(moments), reduction="none")
        loss_giou = 1 - torch.diag(generalized_iou_matrix(span_cxw_to_xx(src), moments))
        return {"loss_span": loss_span.mean(), "loss_giou": loss_giou.mean()}

    def loss_labels(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]
        idx, _ = self._matched(outputs, targets, indices)
        target = torch.full(logits.shape[:2], self.background_label, dtype=torch.int64, device=logits.device)
        target[idx] = self.foreground_label
        loss = F.cross_entropy(logits.transpose(1, 2), target, self.empty_weight.to(logits.dtype), reduction="none")
        with torch.no_grad():
            correct = (logits[idx].argmax(-1) == self.foreground_label).float().mean() * 100
        return {"loss_label": loss.mean(), "class_error": 100 - correct}

    # -- saliency -------------------------------------------------------------------------------------------
    def loss_saliency(self, outputs, targets) -> dict[str, torch.Tensor]:
        c = self.config
        valid = targets["video_mask"].float()
        scores = outputs["saliency_scores"]
        labels = targets["saliency_label"] if "saliency_label" in targets else targets["clip_mask"].float()
        labels = labels.float()
        neg = outputs.get("neg_saliency_scores")
        if neg is not None:
            loss_neg_pair = (-torch.log(1.0 - torch.sigmoid(neg)) * valid).sum(dim=1).mean()
            all_scores = torch.cat([scores, neg], dim=1)
            all_labels = torch.cat([labels, torch.zeros_like(labels)], dim=1)
            all_valid = valid.repeat(1, 2)
        else:  # one video in the batch: no negative queries (the official code crashes there)
            loss_neg_pair = scores.new_zeros(())
            all_scores, all_labels, all_valid = scores, labels, valid
        all_scores = all_valid * all_scores + (1.0 - all_valid) * -1e3
        tau = 0.5
        rank = scores.new_zeros(())
        for level in range(1, 12):
            positive = all_labels >= level
            if positive.sum() == 0:
                continue
            has_positive = positive.sum(dim=1) > 0
            keep = ~(all_labels > 100)
            cur = all_scores * keep / tau + ~keep * -1e3
            logits = cur - cur.max(dim=1, keepdim=True)[0]
            log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True) + 1e-6)
            mean_log_prob_pos = (positive * log_prob * all_valid).sum(1) / (positive.sum(1) + 1e-6)
            rank = rank + (-mean_log_prob_pos * has_positive).mean()
        loss = rank / c.rank_coef + loss_neg_pair
        if c.use_triplet:
            pos_idx, neg_idx = targets["pos_idx"], targets["neg_idx"]
            rows = torch.arange(len(scores), device=scores.device)
            pairs = pos_idx.shape[1]
            pos = torch.stack([scores[rows, pos_idx[:, j]] for j in range(pairs)], dim=1)
            negs = torch.stack([scores[rows, neg_idx[:, j]] for j in range(pairs)], dim=1)
            loss = loss + torch.clamp(c.saliency_margin + negs - pos, min=0).sum() / (len(pos) * pairs) * 2
        return {"loss_saliency": loss}

    # -- SS-MESM and FW-MESM ----------------------------------------------------------------------------------
    def loss_rec_ss(self, outputs, targets) -> dict[str, torch.Tensor]:
        num_clips = [int(k) for k in torch.as_tensor(targets["num_clips"]).tolist()]
        if self.config.multi_clip:
            moments = torch.stack([torch.stack([w.min(), w.max()])
                                   for w in _windows_per_query(targets["norm_moment"])])
        else:
            moments = targets["norm_moment"]
        blocks = [generalized_iou_matrix(m, m) for m in torch.split(moments, num_clips)]
        positive = torch.block_diag(*blocks) >= self.config.iou_gamma
        clip_mask = targets["clip_mask"].unsqueeze(-1)
        clip_feat = (outputs["projed_video_feat"] * clip_mask).sum(dim=1) / clip_mask.sum(dim=1)
        words_mask = outputs["expanded_words_mask"].unsqueeze(-1)
        words_feat = (outputs["expanded_words_feat"] * words_mask).sum(dim=1) / words_mask.sum(dim=1)
        cos = F.normalize(clip_feat, dim=-1, p=2) @ F.normalize(words_feat, dim=-1, p=2).t() / self.config.recss_tau
        logits = cos - cos.max(dim=1, keepdim=True)[0]
        log_prob = logits - torch.log(torch.exp(logits).sum(1, keepdim=True) + 1e-6)
        mean_log_prob_pos = (positive * log_prob).sum(1) / (positive.sum(1) + 1e-6)
        return {"loss_rec_ss": (-mean_log_prob_pos).mean()}

    def loss_rec_fw(self, outputs, targets) -> dict[str, torch.Tensor]:
        logit = outputs["recfw_words_logit"]
        mask = outputs["words_mask"]
        label = targets["words_label"][:, :logit.shape[1]].to(logit.device)
        eps = 0.1
        acc = (logit.max(dim=-1)[1] == label).float()
        mean_acc = (acc * mask).sum() / mask.sum()
        log_p = logit.log_softmax(dim=-1)
        nll = -log_p.gather(dim=-1, index=label.unsqueeze(-1)).squeeze(-1)
        nll = (1 - eps) * nll + eps / log_p.size(-1) * -log_p.sum(dim=-1)
        nll = nll.masked_fill(mask == 0, 0).sum(dim=-1) / mask.sum(dim=-1)
        return {"loss_rec_fw": nll.mean(), "rec_fw_acc": mean_acc}

    # -- all together -------------------------------------------------------------------------------------------
    def match(self, outputs, targets):
        return self.matcher(outputs, targets["norm_moment"], multi=self.config.multi_clip)

    def forward(self, outputs: Mapping[str, Any], targets: Mapping[str, Any],
                is_training: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        c = self.config
        indices = self.match(outputs, targets)
        losses: dict[str, torch.Tensor] = {}
        losses.update(self.loss_spans(outputs, targets, indices))
        losses.update(self.loss_labels(outputs, targets, indices))
        losses.update(self.loss_saliency(outputs, targets))
        if c.rec_fw and is_training:
            losses.update(self.loss_rec_fw(outputs, targets))
        if c.rec_ss:
            losses.update(self.loss_rec_ss(outputs, targets))
        for i, aux in enumerate(outputs.get("aux_outputs", []) if c.aux_loss else []):
            aux_indices = self.match(aux, targets)
            for part in (self.loss_spans(aux, targets, aux_indices), self.loss_labels(aux, targets, aux_indices)):
                losses.update({f"{k}_{i}": v for k, v in part.items()})
        total = sum(losses[k] * self.weight_dict[k] for k in losses if k in self.weight_dict)
        return losses, total


def clip_mask_from_moments(moments: np.ndarray, durations: Sequence[float], lengths: Sequence[int], clip_len: float,
                           padded_length: int | None = None) -> np.ndarray:
    """The official GT frames: int(start / clip_len) .. int(end / clip_len) inclusive (clip_len -1: fractions of
    the video times its length), the end clamped to L - 1 and the start to at most the end."""
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 2)
    width = padded_length or max(lengths)
    mask = np.zeros((len(moments), width), dtype=bool)
    for i, ((start, end), duration, length) in enumerate(zip(moments, durations, lengths)):
        if clip_len == -1:
            s, e = int(start / duration * length), int(end / duration * length)
        else:
            s, e = int(start / clip_len), int(end / clip_len)
        e = min(e, length - 1)
        s = min(s, e)
        mask[i, s:e + 1] = True
    return mask


def sample_contrast_frames(clip_mask: np.ndarray, lengths: Sequence[int], samples: int = 2,
                           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`samples` frames inside and outside each GT window (without replacement when there are enough), the
    dataset's draw for the triplet loss."""
    rng = rng or np.random.default_rng()
    pos, neg = [], []
    for row, length in zip(clip_mask, lengths):
        inside = np.flatnonzero(row[:length])
        outside = np.flatnonzero(~row[:length])
        pos.append(rng.choice(inside, samples, replace=len(inside) < samples))
        pool = outside if len(outside) else inside
        neg.append(rng.choice(pool, samples, replace=len(pool) < samples))
    return np.stack(pos), np.stack(neg)


def build_targets(moments: np.ndarray, durations: Sequence[float], video_mask: torch.Tensor, num_clips: Sequence[int],
                  clip_len: float, words_label: torch.Tensor | None = None, contra_samples: int = 2,
                  rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Targets for `MESMCriterion` from dataset records: GT windows in seconds (N, 2), the annotation durations
    (N,), the (N, L) valid mask of the batch, the queries per video and the clip length (the clip indices are
    not rescaled when a video was pooled to max_video_l, as in the official dataset)."""
    device = video_mask.device
    moments = np.asarray(moments, dtype=np.float32).reshape(-1, 2)
    durations_t = torch.as_tensor(np.asarray(durations, dtype=np.float32), device=device)
    lengths = video_mask.sum(dim=1).tolist()
    clip_mask = clip_mask_from_moments(moments, durations, lengths, clip_len, video_mask.shape[1])
    targets: dict[str, Any] = {
        "norm_moment": torch.as_tensor(moments, device=device) / durations_t[:, None],
        "video_mask": video_mask.bool(),
        "clip_mask": torch.as_tensor(clip_mask, device=device),
        "num_clips": torch.as_tensor(list(num_clips), dtype=torch.long),
    }
    targets["norm_span"] = span_xx_to_cxw(targets["norm_moment"])
    if contra_samples > 0:
        pos, neg = sample_contrast_frames(clip_mask, lengths, contra_samples, rng)
        targets["pos_idx"] = torch.as_tensor(pos, device=device)
        targets["neg_idx"] = torch.as_tensor(neg, device=device)
    if words_label is not None:
        targets["words_label"] = words_label.to(device)
    return targets


__all__ = ["MESMCriterion", "MESMLossConfig", "MESMMatcher", "build_targets", "clip_mask_from_moments",
           "generalized_iou_matrix", "sample_contrast_frames"]
