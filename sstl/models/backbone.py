"""Video backbones: torchvision's R3D-18 and a narrow R3D for the CPU demo.

Both return the pooled clip feature ``[B, D]`` for an input ``[B, 3, T, H, W]`` float. Module names
follow torchvision's ``VideoResNet`` (``stem.0``, ``layer1.0.conv1.0``, ...), so a backbone state
dict is the torchvision one minus ``fc.*`` and fine-tuning loads conv weights by name. The optional
stem max-pool has no parameters, so it does not change any key either.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.video import r3d_18
from torchvision.models.video.resnet import BasicBlock, Conv3DSimple

from sstl.config import ModelConfig


def stem_pool(mode: str) -> nn.MaxPool3d:
    """Paper Sec 4.2: max pooling with stride 2 after the first convolution layer, over space
    (``space``: 4x fewer activations) or over time and space (``spacetime``: 8x)."""
    kt, st = (3, 2) if mode == "spacetime" else (1, 1)
    return nn.MaxPool3d(kernel_size=(kt, 3, 3), stride=(st, 2, 2), padding=(kt // 2, 1, 1))


def _stage(inplanes: int, planes: int, stride: int) -> nn.Sequential:
    """One residual stage of a single BasicBlock, as torchvision's ``VideoResNet._make_layer``."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv3d(
                inplanes,
                planes,
                kernel_size=1,
                stride=Conv3DSimple.get_downsample_stride(stride),
                bias=False,
            ),
            nn.BatchNorm3d(planes),
        )
    return nn.Sequential(BasicBlock(inplanes, planes, Conv3DSimple, stride, downsample))


class TinyR3D(nn.Module):
    """A narrow 3D ResNet: widths (w, 2w, 4w, 8w), one BasicBlock per stage, feature dim 8w.

    Same stem shape and strides as R3D-18 (conv 3x7x7, stride (1, 2, 2)), only narrower and
    shallower, so a CPU runs the whole pipeline in minutes on the synthetic dataset.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        self.layer1 = _stage(width, width, stride=1)
        self.layer2 = _stage(width, 2 * width, stride=2)
        self.layer3 = _stage(2 * width, 4 * width, stride=2)
        self.layer4 = _stage(4 * width, 8 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Identity()  # same slot as torchvision's classifier, always empty here
        # torchvision's VideoResNet initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` float -> ``[B, 8 * width]``."""
        x = self.stem(x)  # (B, w, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 8w, T/8, H/16, W/16)
        return self.avgpool(x).flatten(1)


def build_backbone(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """The backbone named by ``cfg.arch`` (random init) and its pooled feature dimension.

    ``r3d_18`` ignores ``cfg.width`` (its widths are fixed at 64..512). With ``cfg.channels_last``
    the parameters use ``torch.channels_last_3d``; inputs should be converted the same way (the
    models in :mod:`sstl.models.sstl` do it in ``forward``).
    """
    if cfg.arch == "r3d_18":
        model = r3d_18(weights=None)
        dim = model.fc.in_features
        model.fc = nn.Identity()
    elif cfg.arch == "r3d_tiny":
        model = TinyR3D(cfg.width)
        dim = 8 * cfg.width
    else:
        raise ValueError(f"model.arch = {cfg.arch!r} is not known: use 'r3d_18' or 'r3d_tiny'")
    if cfg.stem_pool != "none":
        model.stem.append(stem_pool(cfg.stem_pool))  # parameter-free: state dict keys are unchanged
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model, dim
