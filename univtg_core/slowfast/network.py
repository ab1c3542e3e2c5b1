"""SlowFast R50 8x8 as PySlowFast builds it for HERO's feature extractor, with PySlowFast's parameter names.

The configuration is ``configs/Kinetics/c2/extract_SLOWFAST_8x8_R50.yaml``: ResNet-50 bottlenecks (3, 4, 6, 3
blocks), a Fast pathway with 1/8 of the channels (``BETA_INV`` 8) that sees 4x the frames (``ALPHA`` 4),
fused into the Slow pathway after the stem and after res2-res4 by a 7x1x1 convolution with stride 4 in time
(``FUSION_CONV_CHANNEL_RATIO`` 2). Temporal kernels: Slow 1 in the stem, res2 and res3, 3 in res4 and res5;
Fast 5 in the stem and 3 in every stage. BatchNorm3d with eps 1e-5 everywhere, no non-local blocks, the
identity max-pools between res2 and res3 left out (kernel 1, stride 1: no parameters, no effect).

HERO builds the head with ``last_fc=True``: each pathway's res5 output is averaged over its whole
(time, 7, 7) grid and the two are concatenated, Slow (2048) first: the 2304-d feature. The classifier
(``head.projection``, 400 Kinetics classes) is kept so that the state dict matches the released checkpoint
key for key, but the feature never passes through it.
"""

from __future__ import annotations

import torch
from torch import nn

ALPHA = 4  # Fast pathway frames per Slow pathway frame
BETA_INV = 8  # Slow channels per Fast channel
FUSION_RATIO = 2  # fusion conv output channels per Fast channel
FUSION_KERNEL = 7
WIDTH = 64
STAGE_DEPTHS = (3, 4, 6, 3)  # res2..res5 of ResNet-50
SLOW_TEMPORAL = (1, 1, 1, 3, 3)  # stem, res2, res3, res4, res5
FAST_TEMPORAL = (5, 3, 3, 3, 3)
SPATIAL_STRIDES = (1, 2, 2, 2)
NUM_CLASSES = 400
CROP_SIZE = 224
NUM_FRAMES = 32  # Fast pathway frames per clip
FEATURE_DIM = WIDTH * 32 + WIDTH * 32 // BETA_INV  # 2048 + 256


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class ResNetBasicStem(nn.Module):
    """conv (T x 7 x 7, stride 1-2-2) -> bn -> relu -> max-pool 1 x 3 x 3 (stride 1-2-2)."""

    def __init__(self, dim_in: int, dim_out: int, temporal: int):
        super().__init__()
        self.conv = nn.Conv3d(dim_in, dim_out, (temporal, 7, 7), stride=(1, 2, 2), padding=(temporal // 2, 3, 3),
                              bias=False)
        self.bn = _bn(dim_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool_layer = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


class VideoModelStem(nn.Module):
    """One stem per pathway: ``pathway0_stem`` (Slow), ``pathway1_stem`` (Fast)."""

    def __init__(self):
        super().__init__()
        self.pathway0_stem = ResNetBasicStem(3, WIDTH, SLOW_TEMPORAL[0])
        self.pathway1_stem = ResNetBasicStem(3, WIDTH // BETA_INV, FAST_TEMPORAL[0])

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.pathway0_stem(x[0]), self.pathway1_stem(x[1])]


class FuseFastToSlow(nn.Module):
    """Fast features, strided in time to the Slow rate, concatenated to the Slow features' channels."""

    def __init__(self, fast_channels: int):
        super().__init__()
        out = fast_channels * FUSION_RATIO
        self.conv_f2s = nn.Conv3d(fast_channels, out, (FUSION_KERNEL, 1, 1), stride=(ALPHA, 1, 1),
                                  padding=(FUSION_KERNEL // 2, 0, 0), bias=False)
        self.bn = _bn(out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        fuse = self.relu(self.bn(self.conv_f2s(x[1])))
        return [torch.cat([x[0], fuse], 1), x[1]]


class BottleneckTransform(nn.Module):
    """T x 1 x 1 -> 1 x 3 x 3 (spatial stride here) -> 1 x 1 x 1, each followed by BatchNorm."""

    def __init__(self, dim_in: int, dim_out: int, dim_inner: int, temporal: int, stride: int):
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, (temporal, 1, 1), padding=(temporal // 2, 0, 0), bias=False)
        self.a_bn = _bn(dim_inner)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(dim_inner, dim_inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1),
                           bias=False)
        self.b_bn = _bn(dim_inner)
        self.b_relu = nn.ReLU(inplace=True)
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = _bn(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """Bottleneck plus shortcut (a strided 1 x 1 x 1 projection where the shape changes), then ReLU."""

    def __init__(self, dim_in: int, dim_out: int, dim_inner: int, temporal: int, stride: int):
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False)
            self.branch1_bn = _bn(dim_out)
        self.branch2 = BottleneckTransform(dim_in, dim_out, dim_inner, temporal, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "branch1"):
            x = self.branch1_bn(self.branch1(x)) + self.branch2(x)
        else:
            x = x + self.branch2(x)
        return self.relu(x)


class ResStage(nn.Module):
    """``pathway{p}_res{i}`` blocks for both pathways (every block of a stage has its temporal kernel)."""

    def __init__(self, dims_in: tuple[int, int], dims_out: tuple[int, int], dims_inner: tuple[int, int],
                 temporal: tuple[int, int], depth: int, stride: int):
        super().__init__()
        self.num_blocks = depth
        for p in range(2):
            for i in range(depth):
                block = ResBlock(dims_in[p] if i == 0 else dims_out[p], dims_out[p], dims_inner[p], temporal[p],
                                 stride if i == 0 else 1)
                self.add_module(f"pathway{p}_res{i}", block)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for p in range(2):
            y = x[p]
            for i in range(self.num_blocks):
                y = getattr(self, f"pathway{p}_res{i}")(y)
            out.append(y)
        return out


class ResNetBasicHead(nn.Module):
    """HERO's ``last_fc`` head: average each pathway over (T, H, W), concatenate Slow then Fast."""

    def __init__(self):
        super().__init__()
        size = CROP_SIZE // 32
        self.pathway0_avgpool = nn.AvgPool3d((NUM_FRAMES // ALPHA, size, size), stride=1)
        self.pathway1_avgpool = nn.AvgPool3d((NUM_FRAMES, size, size), stride=1)
        self.projection = nn.Linear(FEATURE_DIM, NUM_CLASSES, bias=True)  # in the checkpoint; not on the path

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        pooled = torch.cat([self.pathway0_avgpool(x[0]), self.pathway1_avgpool(x[1])], 1)
        pooled = pooled.permute(0, 2, 3, 4, 1)  # (N, C, T, H, W) -> (N, T, H, W, C), as HERO flattens it
        return pooled.reshape(pooled.shape[0], -1)


class SlowFastR50(nn.Module):
    """``[slow (B, 3, 8, 224, 224), fast (B, 3, 32, 224, 224)]`` -> ``(B, 2304)`` features."""

    def __init__(self):
        super().__init__()
        fast = WIDTH // BETA_INV  # 8
        fused = WIDTH // (BETA_INV // FUSION_RATIO)  # channels the fusion adds to the Slow pathway: 16
        self.s1 = VideoModelStem()
        self.s1_fuse = FuseFastToSlow(fast)
        dims_slow_out = [WIDTH * 4 * 2**k for k in range(4)]  # 256, 512, 1024, 2048
        dims_slow_in = [WIDTH + fused] + [d + d // (BETA_INV // FUSION_RATIO) for d in dims_slow_out[:3]]
        for k in range(4):
            s = k + 2
            stage = ResStage(
                dims_in=(dims_slow_in[k], (WIDTH if k == 0 else dims_slow_out[k - 1]) // BETA_INV),
                dims_out=(dims_slow_out[k], dims_slow_out[k] // BETA_INV),
                dims_inner=(WIDTH * 2**k, WIDTH * 2**k // BETA_INV),
                temporal=(SLOW_TEMPORAL[s - 1], FAST_TEMPORAL[s - 1]),
                depth=STAGE_DEPTHS[k],
                stride=SPATIAL_STRIDES[k],
            )
            self.add_module(f"s{s}", stage)
            if s < 5:
                self.add_module(f"s{s}_fuse", FuseFastToSlow(dims_slow_out[k] // BETA_INV))
        self.head = ResNetBasicHead()

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        x = self.s1_fuse(self.s1(x))
        x = self.s2_fuse(self.s2(x))
        x = self.s3_fuse(self.s3(x))
        x = self.s4_fuse(self.s4(x))
        return self.head(self.s5(x))


__all__ = ["FEATURE_DIM", "NUM_FRAMES", "SlowFastR50"]
