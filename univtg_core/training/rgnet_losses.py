"""RGNet's training losses (rgnet/model.py `SetCriterion`, rgnet/train.py `train_epoch`), value for value.

Data rule (the official MAD / Ego4D pre-training, `--winret`): a batch holds B queries of one video, each with
one positive window (drawn among the windows its moment overlaps, favouring the middle ones) and one negative
window of the same video. `cross_pairs` crosses them into B^2 (text i, window j) pairs, p = i*B + j; the B pairs
i = j are the positives (all losses), the others are negatives whose retrieval logits fill the off-diagonal of
the B x B matrix of the retrieval InfoNCE. Without --winret (the Ego4D fine-tuning scripts) the negative windows
run as a second forward (`neg_outputs`): their queries count as background, their saliency must stay below the
positive frame's, and retrieval becomes a hinge.

Losses (MAD weights): Hungarian matching with cost 10 L1 - 1 GIoU - 4 P(fg); `loss_span` (10) L1 of matched
(center, width); `loss_giou` (1) 1 - GIoU; `loss_label` (4) cross-entropy with class weights [1, 0.1]
(foreground first), plain mean over all queries; `loss_saliency` (1) hinge 0.2 + s_neg - s_pos (+ the negative
window terms); `loss_retrieval` (10) symmetric InfoNCE at temperature 0.07; the same span / GIoU / label terms
for every auxiliary decoder layer (`_0` ...); with the linear adapter, `adapter_loss`: the same InfoNCE on the
CLIP-matching scores of each sample's ground-truth frames against every sentence. Gate sparsity comes from the
Gumbel gate itself (straight-through sigmoid at `gumbel_eps`; RGNet adds no sparsity term); `samp_loc_loss`
(off in every script) is kept for completeness.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .losses import generalized_temporal_iou_pairs

FOREGROUND, BACKGROUND = 0, 1


def span_cxw_to_xx(spans: torch.Tensor) -> torch.Tensor:
    return torch.stack([spans[..., 0] - 0.5 * spans[..., 1], spans[..., 0] + 0.5 * spans[..., 1]], dim=-1)


def generalized_temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """(N, 2) x (M, 2) [start, end] -> (N, M) GIoU (the official matrix form)."""
    n, m = len(spans1), len(spans2)
    a = spans1[:, None, :].expand(n, m, 2).reshape(-1, 2)
    b = spans2[None, :, :].expand(n, m, 2).reshape(-1, 2)
    return generalized_temporal_iou_pairs(a, b).view(n, m)


@dataclass(frozen=True)
class RGNetLossConfig:
    """Loss settings under the official option names (defaults: the official parser's)."""

    span_loss_coef: float = 10.0
    giou_loss_coef: float = 1.0
    label_loss_coef: float = 4.0
    lw_saliency: float = 1.0
    retrieval_loss_coef: float = 4.0
    adapter_loss_coef: float = 1.0
    samp_loc_loss_coef: float = 10.0
    eos_coef: float = 0.1
    temperature: float = 0.07
    saliency_margin: float = 0.2
    set_cost_span: float = 10.0
    set_cost_giou: float = 1.0
    set_cost_class: float = 4.0
    aux_loss: bool = True
    dec_layers: int = 6
    qddetr: bool = False
    decoder_gating: bool = False
    winret: bool = False
    neg_loss: bool = True  # official default: --no_neg_contrast_loss turns it off
    adapter_loss: bool = True  # official default: --no_adapter_loss turns it off
    adapter_module: str = "none"
    start_epoch_for_adapter: int = -1
    winret_neg_loss: bool = False
    samp_loc_loss: bool = False
    max_v_l: int = 90

    @classmethod
    def from_options(cls, options) -> RGNetLossConfig:
        """From an official `opt` (Namespace or dict)."""
        values = vars(options) if not isinstance(options, dict) else options
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})


def hungarian_match(outputs: dict, span_targets: list[torch.Tensor], cost_span: float = 10.0,
                    cost_giou: float = 1.0, cost_class: float = 4.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per sample (query indices, target indices) minimising cost_span L1 - cost_giou GIoU - cost_class P(fg)
    (the official HungarianMatcher, scipy's linear_sum_assignment)."""
    from scipy.optimize import linear_sum_assignment

    with torch.no_grad():
        bs, num_queries = outputs["pred_spans"].shape[:2]
        prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
        tgt = torch.cat(span_targets)
        out_spans = outputs["pred_spans"].flatten(0, 1)
        cost = (cost_span * torch.cdist(out_spans, tgt, p=1)
                - cost_giou * generalized_temporal_iou(span_cxw_to_xx(out_spans), span_cxw_to_xx(tgt))
                - cost_class * prob[:, torch.full((len(tgt),), FOREGROUND, dtype=torch.long)])
        cost = cost.view(bs, num_queries, -1).cpu()
        sizes = [len(t) for t in span_targets]
        indices = [linear_sum_assignment(c[i]) for i, c in enumerate(cost.split(sizes, -1))]
    return [(torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64)) for i, j in indices]


def _src_permutation(indices):
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    return batch, torch.cat([src for src, _ in indices])


def symmetric_infonce(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy over rows and over columns of logits / T with the diagonal as targets, averaged."""
    logits = logits / temperature
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class RGNetCriterion(nn.Module):
    """`forward(outputs, targets, neg_outputs, n_outputs)` -> the official loss dict, keys in official order.

    targets: {"span_labels": [{"spans": (n_i, 2) (center, width) of the window}], "saliency_pos_labels" and
    "saliency_neg_labels": (B, P) frame indices in the window, "span_proposal" (adapter loss): [{"proposal":
    (1, 2) int [start, end) frames}]}. outputs: the positives' model outputs; neg_outputs: the negative windows'
    forward (without --winret); n_outputs: the off-diagonal pairs' outputs (--winret).
    """

    def __init__(self, config: RGNetLossConfig):
        super().__init__()
        self.config = config
        c = config
        weight_dict = {"loss_span": c.span_loss_coef, "loss_giou": c.giou_loss_coef,
                       "loss_label": c.label_loss_coef, "loss_saliency": c.lw_saliency}
        if c.adapter_loss:
            weight_dict["loss_adapter"] = c.adapter_loss_coef
        if c.decoder_gating or c.qddetr:
            weight_dict["loss_retrieval"] = c.retrieval_loss_coef
        if c.samp_loc_loss:
            weight_dict["sample_loc_loss"] = c.samp_loc_loss_coef
        if c.aux_loss:
            base = dict(weight_dict)
            for i in range(c.dec_layers - 1):
                weight_dict.update({f"{k}_{i}": v for k, v in base.items() if k != "loss_saliency"})
        self.weight_dict = weight_dict
        self.losses = ["spans", "labels", "saliency"]
        if (c.decoder_gating or c.qddetr) and c.retrieval_loss_coef != 0:
            self.losses.append("retrieval")
        if c.samp_loc_loss:
            self.losses.append("samp_loc_loss")
        empty_weight = torch.ones(2)
        empty_weight[BACKGROUND] = c.eos_coef
        self.register_buffer("empty_weight", empty_weight)

    @classmethod
    def from_options(cls, options) -> RGNetCriterion:
        return cls(RGNetLossConfig.from_options(options))

    def match(self, outputs: dict, targets: dict):
        c = self.config
        return hungarian_match(outputs, [t["spans"] for t in targets["span_labels"]], c.set_cost_span,
                               c.set_cost_giou, c.set_cost_class)

    # -- the terms --------------------------------------------------------------------------------------
    def loss_spans(self, outputs, targets, indices, neg_outputs=None, n_outputs=None):
        idx = _src_permutation(indices)
        src = outputs["pred_spans"][idx]
        tgt = torch.cat([t["spans"][i] for t, (_, i) in zip(targets["span_labels"], indices)], dim=0)
        l1 = F.l1_loss(src, tgt, reduction="none")
        giou = 1 - generalized_temporal_iou_pairs(span_cxw_to_xx(src), span_cxw_to_xx(tgt))
        return {"loss_span": l1.mean(), "loss_giou": giou.mean()}

    def loss_labels(self, outputs, targets, indices=None, neg_outputs=None, n_outputs=None):
        logits = outputs["pred_logits"]
        bsz = logits.shape[0]
        if neg_outputs is not None:
            logits = torch.cat((logits, neg_outputs["pred_logits"]), dim=1)
        elif n_outputs is not None and self.config.winret_neg_loss:
            logits = torch.cat((logits, n_outputs["pred_logits"][[i * (bsz - 1) for i in range(bsz)], ...]), dim=1)
        target = torch.full(logits.shape[:2], BACKGROUND, dtype=torch.int64, device=logits.device)
        losses = {}
        if indices is not None:
            idx = _src_permutation(indices)
            target[idx] = FOREGROUND
        ce = F.cross_entropy(logits.transpose(1, 2), target, self.empty_weight, reduction="none")
        losses["loss_label"] = ce.mean()
        if indices is not None:
            with torch.no_grad():
                matched = logits[idx]
                correct = (matched.argmax(-1) == FOREGROUND).float().sum() * (100.0 / len(matched))
            losses["class_error"] = 100 - correct
        return losses

    def loss_saliency(self, outputs, targets, indices, neg_outputs=None, n_outputs=None):
        if "saliency_pos_labels" not in targets:
            return {"loss_saliency": 0}
        margin = self.config.saliency_margin
        scores = outputs["saliency_scores"]
        pos_idx, neg_idx = targets["saliency_pos_labels"], targets["saliency_neg_labels"]
        pairs = pos_idx.shape[1]
        rows = torch.arange(len(scores), device=scores.device)
        pos = torch.stack([scores[rows, pos_idx[:, k]] for k in range(pairs)], dim=1)
        neg = torch.stack([scores[rows, neg_idx[:, k]] for k in range(pairs)], dim=1)
        loss = torch.clamp(margin + neg - pos, min=0).sum() / (len(pos) * pairs) * 2
        if neg_outputs is not None:
            window_max = torch.max(neg_outputs["saliency_scores"], 1)[0]
            window_max = torch.stack([window_max for _ in range(pairs)], dim=1)
            loss = loss + torch.clamp(margin + window_max - pos, min=0).sum() / (len(pos) * pairs) * 2
            if self.config.qddetr:
                neg_scores = neg_outputs["saliency_scores"]
                loss = loss + (-torch.log(1.0 - torch.sigmoid(neg_scores)) * neg_outputs["video_mask"]).sum(1).mean()
        return {"loss_saliency": loss}

    def loss_retrieval(self, outputs, targets, indices=None, neg_outputs=None, n_outputs=None):
        pos = outputs["prob_soft"]
        if pos is None:
            return {"loss_retrieval": torch.zeros((), device=outputs["pred_logits"].device)}
        if n_outputs is None:
            if neg_outputs is None:
                raise ValueError("the retrieval loss needs negative windows: pass neg_outputs, or n_outputs with "
                                 "--winret pairs")
            neg = neg_outputs["prob_soft"]
            return {"loss_retrieval": torch.clamp(self.config.saliency_margin + neg - pos, min=0).sum() / len(pos) * 2}
        return {"loss_retrieval": symmetric_infonce(retrieval_matrix(pos, n_outputs["prob_soft"]),
                                                    self.config.temperature)}

    def loss_samp_loc(self, outputs, targets, indices=None, neg_outputs=None, n_outputs=None):
        span = torch.stack([span_cxw_to_xx(t["spans"]).squeeze() for t in targets["span_labels"]]) * self.config.max_v_l
        span[:, 0] = span[:, 0].floor()
        span[:, 1] = span[:, 1].ceil()
        span = span.to(int)
        weights = outputs["attn_weights"]
        target = torch.zeros_like(weights)
        for i in range(span.shape[0]):
            target[:, i, span[i, 0]:span[i, 1]] = 1
        return {"sample_loc_loss": F.binary_cross_entropy(weights.flatten(), target.flatten().to(weights))}

    def loss_adapter(self, logits: torch.Tensor) -> torch.Tensor:
        """The adapter InfoNCE on (B, B) CLIP-matching scores of each sample's ground truth x every sentence."""
        return symmetric_infonce(logits, self.config.temperature)

    _TERMS = {"spans": "loss_spans", "labels": "loss_labels", "saliency": "loss_saliency",
              "retrieval": "loss_retrieval", "samp_loc_loss": "loss_samp_loc"}

    def forward(self, outputs: dict, targets: dict | None, neg_outputs: dict | None = None,
                n_outputs: dict | None = None) -> dict[str, torch.Tensor]:
        if targets is None:
            return self.loss_labels(outputs, None, None)
        top = {k: v for k, v in outputs.items() if k != "aux_outputs"}
        indices = self.match(top, targets)
        losses: dict = {}
        for name in self.losses:
            losses.update(getattr(self, self._TERMS[name])(outputs, targets, indices, neg_outputs, n_outputs))
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            indices = self.match(aux, targets)
            for name in self.losses:
                if name in ("saliency", "retrieval", "samp_loc_loss"):
                    continue
                terms = getattr(self, self._TERMS[name])(aux, targets, indices, neg_outputs, n_outputs)
                losses.update({f"{k}_{i}": v for k, v in terms.items()})
        return losses

    def total(self, losses: dict) -> torch.Tensor:
        """The official loss_overall: sum of weight x term over the terms in weight_dict."""
        return sum(losses[k] * self.weight_dict[k] for k in losses if k in self.weight_dict)


def retrieval_matrix(positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """(B, B) retrieval logits R[i, j] of (text i, window j): the positives (B, 1) on the diagonal, the
    off-diagonal pairs (B(B-1), 1) in increasing pair index i*B + j."""
    bsz = positive.shape[0]
    logits = torch.diagonal_scatter(torch.zeros(bsz, bsz, dtype=positive.dtype, device=positive.device),
                                    positive.flatten())
    idx = torch.tensor([[i for i in range(bsz) if i != j] for j in range(bsz)], dtype=torch.int64,
                       device=positive.device)
    return logits.scatter(1, idx, negatives.reshape(bsz, -1))


# ----------------------------------------------------------------------------------------------- the data rule
def cross_pairs(src_txt: torch.Tensor, src_txt_mask: torch.Tensor, src_vid: torch.Tensor,
                src_vid_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The --winret model input: B queries x B positive windows -> B^2 pairs, pair i*B + j = (text i, window j)."""
    bsz = len(src_txt)
    return dict(src_txt=torch.repeat_interleave(src_txt, bsz, dim=0),
                src_txt_mask=torch.repeat_interleave(src_txt_mask, bsz, dim=0),
                src_vid_motion=src_vid.repeat([bsz, 1, 1]), src_vid_motion_mask=src_vid_mask.repeat([bsz, 1]))


def split_pairs(outputs: dict, bsz: int, official_attn_selection: bool = False) -> tuple[dict, dict]:
    """The pairs' outputs -> (positives' outputs, off-diagonal pairs' outputs).

    official_attn_selection: keep `attn_weights` of pairs i*i - 1 (i = 1..B), as train_epoch does (its only
    consumer, samp_loc_loss, is off in every script); otherwise those of the positive pairs.
    """
    pos_idx = [i * bsz + i for i in range(bsz)]
    neg_idx = [p for p in range(bsz * bsz) if p not in pos_idx]
    attn_idx = [i * i - 1 for i in range(1, bsz + 1)] if official_attn_selection else pos_idx
    positives: dict = {}
    negatives: dict = {}
    for key, value in outputs.items():
        if key == "aux_outputs":
            positives[key] = [{k: v[pos_idx] for k, v in layer.items()} for layer in value]
        elif key == "attn_weights":
            positives[key] = value.index_select(1, torch.tensor(attn_idx, device=value.device))
        elif value is None:
            positives[key] = negatives[key] = None
        else:
            positives[key], negatives[key] = value[pos_idx], value[neg_idx]
    return positives, negatives


@dataclass
class RGNetBatch:
    """One training batch as the official dataset and collate produce it (tensors, padded, masks 1 = valid).

    query_feat / query_mask: (B, Lt, t_feat_dim) normalised tokens; query_cls (B, E) normalised sentences;
    window_feat / window_mask: (B, Lv, D) each query's positive window (raw features, as the official dataset
    returns them); neg_window_feat / neg_window_mask: a negative window of the same video per query (optional);
    span_labels (B, n, 2) ground truth clipped to the window, / window length, (center, width);
    saliency_pos_labels / saliency_neg_labels (B, P) window frames inside / outside it;
    span_proposal (B, 2) int [floor(start), ceil(end)) window frames (the adapter loss).
    """

    query_feat: torch.Tensor
    query_mask: torch.Tensor
    query_cls: torch.Tensor
    window_feat: torch.Tensor
    window_mask: torch.Tensor
    span_labels: torch.Tensor
    saliency_pos_labels: torch.Tensor
    saliency_neg_labels: torch.Tensor
    span_proposal: torch.Tensor | None = None
    neg_window_feat: torch.Tensor | None = None
    neg_window_mask: torch.Tensor | None = None

    def targets(self) -> dict:
        targets = {"span_labels": [{"spans": s} for s in self.span_labels],
                   "saliency_pos_labels": self.saliency_pos_labels, "saliency_neg_labels": self.saliency_neg_labels}
        if self.span_proposal is not None:
            targets["span_proposal"] = [{"proposal": p.view(1, 2)} for p in self.span_proposal]
        return targets


def training_losses(model, criterion: RGNetCriterion, batch: RGNetBatch, epoch: int = 0,
                    official_attn_selection: bool = False) -> tuple[dict, torch.Tensor]:
    """One official train_epoch step without the optimiser: (loss dict incl. `loss_overall`, the total).

    --winret runs the B^2 pairs; --neg_loss also runs the negative windows; the adapter loss joins from
    `start_epoch_for_adapter` on (as `adapter_loss`)."""
    c = criterion.config
    targets = batch.targets()
    plain = dict(src_txt=batch.query_feat, src_txt_mask=batch.query_mask, src_vid_motion=batch.window_feat,
                 src_vid_motion_mask=batch.window_mask)
    n_outputs = None
    if c.winret:
        outputs, n_outputs = split_pairs(model(**cross_pairs(batch.query_feat, batch.query_mask, batch.window_feat,
                                                             batch.window_mask)), len(batch.query_feat),
                                         official_attn_selection)
    else:
        outputs = model(**plain)
    neg_outputs = None
    if c.neg_loss:
        if batch.neg_window_feat is None:
            raise ValueError("neg_loss is on (the official default): the batch needs neg_window_feat")
        neg_outputs = model(src_txt=batch.query_feat, src_txt_mask=batch.query_mask,
                            src_vid_motion=batch.neg_window_feat, src_vid_motion_mask=batch.neg_window_mask)
    losses = criterion(outputs, targets, neg_outputs, n_outputs)
    total = criterion.total(losses)
    if c.adapter_loss and epoch >= c.start_epoch_for_adapter:
        logits = model.forward_clip_matching(batch.query_cls, batch.window_feat, batch.window_mask,
                                             proposal=targets["span_proposal"], is_groundtruth=True)
        adapter = criterion.loss_adapter(logits)
        total = total + adapter * criterion.weight_dict["loss_adapter"]
        losses["adapter_loss"] = adapter
    losses["loss_overall"] = total
    return losses, total
