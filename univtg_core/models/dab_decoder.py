"""The DAB-DETR-style anchor decoder for 1-D spans that MESM and RGNet share (nn.Modules only), parameter
names as in the official code.

Each query carries a learned anchor (center, width); every layer turns the anchor's sine embedding into the
query position, attends to the frames with a head-wise concatenated [content | position] query and key, and
refines the anchor by an MLP in inverse-sigmoid space. Its arithmetic follows DAB-DETR as both ship it:

- the attention modules have no input projections (the layer projects q/k/v itself), so they only hold
  `out_proj`; the cross-attention runs at twice the model width for queries and keys;
- `modulate_t_attn` scales the *whole* sine embedding (center and width halves) by
  sigmoid(ref_anchor_head(state)) / anchor width;
- the normalised state is used only by the heads and the next layer's anchor update reads the un-normalised one.

What differs between the two models is a setting, never a copy of the code:

| setting | MESM | RGNet (`--dabdetr`) |
|---|---|---|
| feed-forward `activation` | `prelu` (a learned `activation.weight` per layer) | `relu` |
| `bbox_embed_diff_each_layer` | False: one `bbox_embed` MLP for every layer | True: `bbox_embed.<layer>` |
| `keep_query_pos` | False: `ca_qpos_proj` in the first layer only | True: in every layer |
| `sine_feats` per coordinate | d_model / 2 (the default) | 128 |

Everything is sequence-first, (L, B, d), as in the official code.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import MLP, inverse_sigmoid, sine_anchor_embedding

ACTIVATIONS = ("relu", "prelu")


class AnchorAttention(nn.Module):
    """Multi-head attention without input projections: q/k of width `embed_dim`, values of width `vdim`.

    Scale (embed_dim / heads)^-0.5; boolean masks block with -inf, float masks are added; softmax after
    subtracting the row maximum; `out_proj` maps the concatenated heads (vdim -> vdim).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, vdim: int | None = None):
        super().__init__()
        vdim = embed_dim if vdim is None else vdim
        if embed_dim % num_heads or vdim % num_heads:
            raise ValueError(f"attention widths {embed_dim}/{vdim} are not divisible by {num_heads} heads")
        self.embed_dim, self.vdim, self.num_heads, self.dropout = embed_dim, vdim, num_heads, dropout
        self.out_proj = nn.Linear(vdim, vdim)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        tgt_len, bsz, _ = query.shape
        heads = self.num_heads
        head_dim, v_head_dim = self.embed_dim // heads, self.vdim // heads
        q = (query * float(head_dim) ** -0.5).contiguous().view(tgt_len, bsz * heads, head_dim).transpose(0, 1)
        k = key.contiguous().view(-1, bsz * heads, head_dim).transpose(0, 1)
        v = value.contiguous().view(-1, bsz * heads, v_head_dim).transpose(0, 1)
        src_len = k.shape[1]
        weights = torch.bmm(q, k.transpose(1, 2))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                weights = weights.masked_fill(attn_mask, float("-inf"))
            else:
                weights = weights + attn_mask
        if key_padding_mask is not None:
            weights = weights.view(bsz, heads, tgt_len, src_len).masked_fill(
                key_padding_mask[:, None, None, :].bool(), float("-inf")).view(bsz * heads, tgt_len, src_len)
        weights = torch.softmax(weights - weights.max(dim=-1, keepdim=True)[0], dim=-1)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(tgt_len, bsz, self.vdim)
        return self.out_proj(out)


class AnchorDecoderLayer(nn.Module):
    """Self-attention over queries, then cross-attention to the frames with [content | sine] queries/keys."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 keep_query_pos: bool = True, rm_self_attn_decoder: bool = False, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        if not rm_self_attn_decoder:
            self.sa_qcontent_proj = nn.Linear(d_model, d_model)
            self.sa_qpos_proj = nn.Linear(d_model, d_model)
            self.sa_kcontent_proj = nn.Linear(d_model, d_model)
            self.sa_kpos_proj = nn.Linear(d_model, d_model)
            self.sa_v_proj = nn.Linear(d_model, d_model)
            self.self_attn = AnchorAttention(d_model, nhead, dropout=dropout, vdim=d_model)
            self.norm1 = nn.LayerNorm(d_model)
            self.dropout1 = nn.Dropout(dropout)
        self.ca_qcontent_proj = nn.Linear(d_model, d_model)
        self.ca_qpos_proj = nn.Linear(d_model, d_model)
        self.ca_kcontent_proj = nn.Linear(d_model, d_model)
        self.ca_kpos_proj = nn.Linear(d_model, d_model)
        self.ca_v_proj = nn.Linear(d_model, d_model)
        self.ca_qpos_sine_proj = nn.Linear(d_model, d_model)
        self.cross_attn = AnchorAttention(d_model * 2, nhead, dropout=dropout, vdim=d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        # Registered last, as in the official layer, so the state-dict keys keep the official order.
        self.activation = nn.PReLU() if activation == "prelu" else None
        self.nhead = nhead
        self.rm_self_attn_decoder = rm_self_attn_decoder
        self.keep_query_pos = keep_query_pos

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.activation is None else self.activation(x)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor | None,
                pos: torch.Tensor, query_pos: torch.Tensor, query_sine_embed: torch.Tensor,
                is_first: bool = False) -> torch.Tensor:
        if not self.rm_self_attn_decoder:
            q = self.sa_qcontent_proj(tgt) + self.sa_qpos_proj(query_pos)
            k = self.sa_kcontent_proj(tgt) + self.sa_kpos_proj(query_pos)
            tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, self.sa_v_proj(tgt))))

        num_queries, bs, d = tgt.shape
        hw = memory.shape[0]
        q_content = self.ca_qcontent_proj(tgt)
        k_content = self.ca_kcontent_proj(memory)
        v = self.ca_v_proj(memory)
        k_pos = self.ca_kpos_proj(pos)
        if is_first or self.keep_query_pos:
            q = q_content + self.ca_qpos_proj(query_pos)
            k = k_content + k_pos
        else:
            q, k = q_content, k_content
        heads, head_dim = self.nhead, d // self.nhead
        sine = self.ca_qpos_sine_proj(query_sine_embed).view(num_queries, bs, heads, head_dim)
        q = torch.cat([q.view(num_queries, bs, heads, head_dim), sine], dim=3).view(num_queries, bs, d * 2)
        k = torch.cat([k.view(hw, bs, heads, head_dim), k_pos.view(hw, bs, heads, head_dim)], dim=3)
        tgt2 = self.cross_attn(q, k.view(hw, bs, d * 2), v, key_padding_mask=memory_key_padding_mask)
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(self._activate(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


class AnchorDecoder(nn.Module):
    """Stack of `AnchorDecoderLayer`s with iterative anchor refinement.

    forward(...) -> (hs, refs): hs (layers, B, Q, d), the state after the final LayerNorm at every layer;
    refs (layers, B, Q, query_dim), the anchor that *entered* each layer (sigmoid space).
    """

    def __init__(self, layer: AnchorDecoderLayer, num_layers: int, norm: nn.LayerNorm, d_model: int = 256,
                 query_dim: int = 2, keep_query_pos: bool = True, query_scale_type: str = "cond_elewise",
                 modulate_t_attn: bool = True, bbox_embed_diff_each_layer: bool = True,
                 sine_feats: int | None = None, sine_temperature: float = 10000.0):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm
        self.query_dim = query_dim
        self.sine_feats = d_model // query_dim if sine_feats is None else sine_feats
        self.sine_temperature = sine_temperature
        if query_scale_type == "cond_elewise":
            self.query_scale = MLP(d_model, d_model, d_model, 2)
        elif query_scale_type == "cond_scalar":
            self.query_scale = MLP(d_model, d_model, 1, 2)
        elif query_scale_type == "fix_elewise":
            self.query_scale = nn.Embedding(num_layers, d_model)
        else:
            raise ValueError(f"query_scale_type must be cond_elewise, cond_scalar or fix_elewise; got "
                             f"{query_scale_type!r}")
        self.query_scale_type = query_scale_type
        self.ref_point_head = MLP(query_dim * self.sine_feats, d_model, d_model, 2)
        if bbox_embed_diff_each_layer:
            self.bbox_embed = nn.ModuleList(MLP(d_model, d_model, 2, 3) for _ in range(num_layers))
            heads = list(self.bbox_embed)
        else:
            self.bbox_embed = MLP(d_model, d_model, 2, 3)
            heads = [self.bbox_embed]
        for head in heads:
            nn.init.constant_(head.layers[-1].weight.data, 0)
            nn.init.constant_(head.layers[-1].bias.data, 0)
        self.bbox_embed_diff_each_layer = bbox_embed_diff_each_layer
        self.modulate_t_attn = modulate_t_attn
        if modulate_t_attn:
            self.ref_anchor_head = MLP(d_model, d_model, 1, 2)
        if not keep_query_pos:
            for layer_id in range(num_layers - 1):
                self.layers[layer_id + 1].ca_qpos_proj = None

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor | None,
                pos: torch.Tensor, refpoints_unsigmoid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = tgt
        intermediate = []
        reference = refpoints_unsigmoid.sigmoid()
        refs = [reference]
        for layer_id, layer in enumerate(self.layers):
            center = reference[..., : self.query_dim]
            query_sine_embed = sine_anchor_embedding(center, self.sine_feats, self.sine_temperature)
            query_pos = self.ref_point_head(query_sine_embed)
            if self.query_scale_type == "fix_elewise":
                scale = self.query_scale.weight[layer_id]
            else:
                scale = 1 if layer_id == 0 else self.query_scale(output)
            query_sine_embed = query_sine_embed * scale
            if self.modulate_t_attn:
                width_cond = self.ref_anchor_head(output).sigmoid()
                query_sine_embed = query_sine_embed * (width_cond[..., 0] / center[..., 1]).unsqueeze(-1)
            output = layer(output, memory, memory_key_padding_mask, pos, query_pos, query_sine_embed,
                           is_first=layer_id == 0)
            head = self.bbox_embed[layer_id] if self.bbox_embed_diff_each_layer else self.bbox_embed
            delta = head(output)
            new_reference = (delta[..., : self.query_dim] + inverse_sigmoid(reference)).sigmoid()
            if layer_id != self.num_layers - 1:
                refs.append(new_reference)
            reference = new_reference.detach()
            intermediate.append(self.norm(output))
        return torch.stack(intermediate).transpose(1, 2), torch.stack(refs).transpose(1, 2)
