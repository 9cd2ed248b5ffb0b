"""The Zhang et al. (2016) colorization network, rebuilt from its layer table
with random weights, as the speed anchor for our own network.

8 conv blocks (64-128-256-512-512-512-512-256), stride-2 downsampling, no
pooling, dilation 2 in blocks 5 and 6, a 4x4 transposed conv back to 1/4
resolution and a 1x1 conv to 313 bins.
"""

from __future__ import annotations


def build_zhang2016(num_bins: int = 313):
    from torch import nn

    def block(cin, cout, n, *, stride_last=1, dilation=1):
        layers = []
        for i in range(n):
            stride = stride_last if i == n - 1 else 1
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU(True)]
        layers.append(nn.BatchNorm2d(cout))
        return layers

    layers = []
    layers += block(1, 64, 2, stride_last=2)  # 112
    layers += block(64, 128, 2, stride_last=2)  # 56
    layers += block(128, 256, 3, stride_last=2)  # 28
    layers += block(256, 512, 3)
    layers += block(512, 512, 3, dilation=2)
    layers += block(512, 512, 3, dilation=2)
    layers += block(512, 512, 3)
    layers += [nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(True)]  # 56
    for _ in range(2):
        layers += [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True)]
    layers += [nn.Conv2d(256, num_bins, 1)]
    return nn.Sequential(*layers)
