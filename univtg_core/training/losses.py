"""UniVTG's criterion (model/univtg.py, SetCriterion with losses spans + labels + saliency).

- loss_f: foreground BCE on the per-clip probabilities; background clips weigh `eos_coef`.
- loss_b: smooth-L1 between (anchor + predicted offsets) and the assigned GT window, foreground clips only.
- loss_g: 1 - GIoU of the same pairs.
- loss_s_inter: symmetric InfoNCE between each video's positive clip and every query in the batch.
- loss_s_intra: InfoNCE inside each video: the positive clip against the clips scored lower than it
  (plus the symmetric term across the batch at the positive's position, as the official code has it).

All arithmetic runs in float32 (safe under autocast). The returned dict has the official keys and
`weight_dict` maps them to their coefficients; `total` sums the weighted terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models._blocks import generalized_temporal_iou_pairs

LOSS_NAMES = ("loss_b", "loss_g", "loss_f", "loss_s_intra", "loss_s_inter")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, D) x (M, D) -> (N, M) cosine similarities, norms floored at eps (official sim_matrix)."""
    a = a / a.norm(dim=1, keepdim=True).clamp(min=eps)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=eps)
    return a @ b.t()


class UniVTGCriterion(nn.Module):
    """The five UniVTG losses; coefficients default to the official option defaults."""

    def __init__(self, b_loss_coef: float = 10, g_loss_coef: float = 1, f_loss_coef: float = 4,
                 s_loss_intra_coef: float = 1, s_loss_inter_coef: float = 0, eos_coef: float = 0.1,
                 temperature: float = 0.07):
        super().__init__()
        self.weight_dict = {"loss_b": b_loss_coef, "loss_g": g_loss_coef, "loss_f": f_loss_coef,
                            "loss_s_intra": s_loss_intra_coef, "loss_s_inter": s_loss_inter_coef}
        self.eos_coef = eos_coef
        self.temperature = temperature

    @classmethod
    def from_options(cls, opt) -> UniVTGCriterion:
        return cls(opt.b_loss_coef, opt.g_loss_coef, opt.f_loss_coef, opt.s_loss_intra_coef,
                   opt.s_loss_inter_coef, opt.eos_coef, opt.temperature)

    def loss_spans(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        pred = targets["timestamp"].float() + outputs["pred_spans"].float()
        gt = targets["span_labels_nn"].float()
        valid = targets["timestamp_window"].bool()
        smooth = F.smooth_l1_loss(pred, gt, reduction="none") * valid.unsqueeze(-1)
        giou = generalized_temporal_iou_pairs(pred[valid], gt[valid])
        return {"loss_b": smooth.sum() / valid.sum(), "loss_g": (1 - giou).mean()}

    def loss_labels(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        prob = outputs["pred_logits"].float().squeeze(-1)
        mask = targets["timestamp_mask"].bool()
        valid = targets["timestamp_window"].bool()
        target = valid.float()
        weights = torch.zeros_like(prob)
        weights[mask] = self.eos_coef
        weights[valid] = 1.0
        bce = F.binary_cross_entropy(prob, target, weight=weights, reduction="none") * mask
        return {"loss_f": bce.sum() / mask.sum()}

    def loss_saliency(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor | float]:
        if "saliency_pos_labels" not in targets or targets["saliency_scores"].sum() == 0:
            return {"loss_s_inter": 0.0, "loss_s_intra": 0.0}
        saliency = targets["saliency_scores"].float()
        vid = outputs["vid_mem_proj"].float()
        txt = outputs["txt_mem_proj"].float().squeeze(1)
        pos = targets["saliency_pos_labels"][:, 0].long()
        rows = torch.arange(len(vid), device=vid.device)
        t = self.temperature

        sim = cosine_matrix(vid[rows, pos], txt)
        inter = -torch.diagonal(F.log_softmax(sim / t, dim=1)).mean() - \
            torch.diagonal(F.log_softmax(sim.t() / t, dim=1)).mean()

        candidates = saliency < saliency[rows, pos].unsqueeze(-1)
        candidates[rows, pos] = True
        candidates = candidates & targets["timestamp_mask"].bool()
        sim_in = F.cosine_similarity(vid, txt.unsqueeze(1), dim=-1) + (candidates.float() + 1e-45).log()
        logsm_i = F.log_softmax(sim_in / t, dim=1)
        logsm_j = F.log_softmax(sim_in.t() / t, dim=1)
        intra = -logsm_i[rows, pos].mean() - logsm_j[pos, rows].mean()
        return {"loss_s_inter": inter, "loss_s_intra": intra}

    def forward(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor | float]:
        losses: dict[str, torch.Tensor | float] = {}
        losses.update(self.loss_spans(outputs, targets))
        losses.update(self.loss_labels(outputs, targets))
        losses.update(self.loss_saliency(outputs, targets))
        return losses

    def total(self, losses: dict[str, torch.Tensor | float]) -> torch.Tensor:
        """Weighted sum of the terms (official `sum(loss_dict[k] * weight_dict[k])`)."""
        return sum(losses[k] * self.weight_dict[k] for k in losses if k in self.weight_dict)
