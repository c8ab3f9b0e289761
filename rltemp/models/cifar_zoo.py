"""The CIFAR knowledge-distillation model zoo, laid out to load the published teacher checkpoints.

Architectures and state-dict layouts follow the models used across the KD literature since
CRD (Tian et al., ICLR 2020; the RepDistiller and mdistiller code bases): CIFAR ResNets
(He et al. 2016) incl. the x4-wide resnet8x4/resnet32x4, Wide ResNets (Zagoruyko & Komodakis
2016), VGG with batch norm (Simonyan & Zisserman 2015) and ShuffleNet V2 (Ma et al. 2018): the
architectures of the shipped pairs in ``envs/cifar100/``. Parameter names, shapes and counts match
``tests/data/cifar_zoo_layout.json`` (see ``tests/data/README.md``) exactly (tested), so
``torch.load(ckpt)["model"]`` loads strictly. Every forward returns logits only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rltemp.models.base import MODELS


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


# --------------------------------------------------------------------------- CIFAR ResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class CifarResNet(nn.Module):
    """3-stage CIFAR ResNet with (depth - 2) / 6 basic blocks per stage."""

    def __init__(self, depth: int, filters: list[int], num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.inplanes = filters[0]
        self.conv1 = nn.Conv2d(3, filters[0], 3, padding=1, bias=False)
        self.bn1 = _bn(filters[0])
        self.layer1 = self._make_layer(filters[1], n, 1)
        self.layer2 = self._make_layer(filters[2], n, 2)
        self.layer3 = self._make_layer(filters[3], n, 2)
        self.fc = nn.Linear(filters[3], num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), _bn(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _resnet(depth: int, filters: list[int]):  # noqa: ANN202
    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return CifarResNet(depth, filters, num_classes)

    build.__doc__ = f"CIFAR ResNet-{depth} with stage widths {filters[1:]}."
    return build


for _d in (20, 32, 56, 110):
    MODELS.register(f"resnet{_d}")(_resnet(_d, [16, 16, 32, 64]))
MODELS.register("resnet8x4")(_resnet(8, [32, 64, 128, 256]))
MODELS.register("resnet32x4")(_resnet(32, [32, 64, 128, 256]))


# --------------------------------------------------------------------------- Wide ResNet


class WideBlock(nn.Module):
    """Pre-activation block; a 1x1 ``convShortcut`` when the width changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = _bn(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.equal else self.convShortcut(act))


class WideStage(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout,
                                               stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int) -> None:
        super().__init__()
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = WideStage(n, ch[0], ch[1], 1)
        self.block2 = WideStage(n, ch[1], ch[2], 2)
        self.block3 = WideStage(n, ch[2], ch[3], 2)
        self.bn1 = _bn(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn1(x)), 1).flatten(1))


def _wrn(depth: int, widen: int):  # noqa: ANN202
    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return WideResNet(depth, widen, num_classes)

    build.__doc__ = f"WRN-{depth}-{widen}."
    return build


for _d, _w in ((16, 2), (40, 1), (40, 2)):
    MODELS.register(f"wrn_{_d}_{_w}")(_wrn(_d, _w))


# --------------------------------------------------------------------------- VGG (BN)


class VGG(nn.Module):
    """Five conv blocks (conv+BN+ReLU, last ReLU applied in forward), max-pool between, global pool."""

    def __init__(self, cfg: list[list[int]], num_classes: int) -> None:
        super().__init__()
        cin = 3
        for i, widths in enumerate(cfg):
            layers: list[nn.Module] = []
            for w in widths:
                layers += [nn.Conv2d(cin, w, 3, padding=1), _bn(w), nn.ReLU(inplace=True)]
                cin = w
            setattr(self, f"block{i}", nn.Sequential(*layers[:-1]))
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        for i in range(5):
            x = F.relu(getattr(self, f"block{i}")(x))
            if i < 3 or (i == 3 and h == 64):
                x = F.max_pool2d(x, 2)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("vgg8")
def vgg8(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGG-8 with batch norm (one conv per block)."""
    return VGG([[64], [128], [256], [512], [512]], num_classes)


@MODELS.register("vgg13")
def vgg13(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGG-13 with batch norm (two convs per block)."""
    return VGG([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]], num_classes)


# --------------------------------------------------------------------------- ShuffleNet V2


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV2Basic(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        c = cin // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = _bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = _bn(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = _bn(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        x1, x2 = x[:, :c], x[:, c:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = F.relu(self.bn3(self.conv3(self.bn2(self.conv2(out)))))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class ShuffleV2Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = _bn(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = _bn(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = _bn(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = _bn(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = _bn(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, out_channels: list[int], num_blocks: list[int], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = _bn(24)
        cin = 24
        for i, (cout, n) in enumerate(zip(out_channels[:3], num_blocks), 1):
            setattr(self, f"layer{i}", nn.Sequential(ShuffleV2Down(cin, cout),
                                                     *[ShuffleV2Basic(cout) for _ in range(n)]))
            cin = cout
        self.conv2 = nn.Conv2d(cin, out_channels[3], 1, 1, 0, bias=False)
        self.bn2 = _bn(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("ShuffleV2")
def shufflev2(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ShuffleNet V2 1x (stage widths 116/232/464, 1024 final)."""
    return ShuffleNetV2([116, 232, 464, 1024], [3, 7, 3], num_classes)


CIFAR_ZOO = ["resnet8x4", "resnet32x4", "resnet20", "resnet32", "resnet56", "resnet110", "wrn_16_2", "wrn_40_1",
             "wrn_40_2", "vgg8", "vgg13", "ShuffleV2"]
