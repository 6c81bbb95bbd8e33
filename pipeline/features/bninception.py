"""BN-Inception (Inception V2; Ioffe & Szegedy, "Batch Normalization", ICML 2015) as a timm model.

timm ships no BN-Inception, so this module registers one: importing `pipeline.features` makes

    timm.create_model("bninception", num_classes=48)
    timm.create_model("bninception", pretrained=True, num_classes=48,
                      pretrained_cfg_overlay=dict(file="hmdb51_bninception.pth"))

work like any timm model. The layer plan is the paper's Figure 5 network as released for action
recognition by TSN (Wang et al. 2016) and used by the DDLSTM paper: a 7x7/2 stem, 3x3 stage, ten
inception blocks (3a-3c, 4a-4e, 5a-5b; 3c and 4e reduce resolution; 5x5 branches replaced by two
3x3), every convolution followed by batch normalisation and ReLU, global average pooling, dropout,
and a linear classifier `fc`. Max pooling rounds up (Caffe's rule), so 224 inputs give 7x7 maps.
`width_multiplier` scales every block's channels (1.0 is the paper's network; the CPU demo uses a
narrower one).

Input convention (the model's `pretrained_cfg`): RGB, scaled to [0, 1], normalised with
mean (128, 117, 104) / 255 and std 1 / 255. That is numerically Caffe's BGR, 0-255, mean
(104, 117, 128) input with the channels in RGB order; checkpoints from Caffe/TSN ports that expect
BGR must have `conv1` input channels reversed (`reverse_input_channels`).
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5),
            nn.ReLU(inplace=True),
        )


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3; pool (-> 1x1).

    A reducing block (stride 2) has no 1x1 branch and a max-pool branch without projection.
    """

    def __init__(self, in_channels, plain, reduce3, out3, reduce_double, out_double, pool, pool_proj, stride=1):
        super().__init__()
        self.plain = ConvBNReLU(in_channels, plain, 1) if plain else None
        self.branch3 = nn.Sequential(ConvBNReLU(in_channels, reduce3, 1), ConvBNReLU(reduce3, out3, 3, stride, 1))
        self.double3 = nn.Sequential(
            ConvBNReLU(in_channels, reduce_double, 1),
            ConvBNReLU(reduce_double, out_double, 3, 1, 1),
            ConvBNReLU(out_double, out_double, 3, stride, 1),
        )
        if stride == 2:
            self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        else:
            pooling = nn.AvgPool2d(3, 1, 1, count_include_pad=True) if pool == "avg" else nn.MaxPool2d(3, 1, 1)
            self.pool = nn.Sequential(pooling, ConvBNReLU(in_channels, pool_proj, 1))
        self.out_channels = (plain or 0) + out3 + out_double + (pool_proj if stride == 1 else in_channels)

    def forward(self, x):
        branches = [self.branch3(x), self.double3(x), self.pool(x)]
        if self.plain is not None:
            branches.insert(0, self.plain(x))
        return torch.cat(branches, 1)


# name: (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool projection, stride)
BLOCKS = (
    ("3a", (64, 64, 64, 64, 96, "avg", 32, 1)),
    ("3b", (64, 64, 96, 64, 96, "avg", 64, 1)),
    ("3c", (0, 128, 160, 64, 96, "max", 0, 2)),
    ("4a", (224, 64, 96, 96, 128, "avg", 128, 1)),
    ("4b", (192, 96, 128, 96, 128, "avg", 128, 1)),
    ("4c", (160, 128, 160, 128, 160, "avg", 128, 1)),
    ("4d", (96, 128, 192, 160, 192, "avg", 128, 1)),
    ("4e", (0, 128, 192, 192, 256, "max", 0, 2)),
    ("5a", (352, 192, 320, 160, 224, "avg", 128, 1)),
    ("5b", (352, 192, 320, 192, 224, "max", 128, 1)),
)


class BNInception(nn.Module):
    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.2, width_multiplier=1.0, global_pool="avg"):
        super().__init__()
        if global_pool != "avg":
            raise ValueError("BNInception supports global_pool='avg' only")

        def width(channels):
            return max(8, round(channels * width_multiplier)) if channels else 0

        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.stem = nn.Sequential(
            ConvBNReLU(in_chans, width(64), 7, 2, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            ConvBNReLU(width(64), width(64), 1),
            ConvBNReLU(width(64), width(192), 3, 1, 1),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        channels = width(192)
        blocks = []
        for _name, (plain, r3, o3, rd, od, pool, proj, stride) in BLOCKS:
            block = InceptionBlock(channels, width(plain), width(r3), width(o3), width(rd), width(od), pool,
                                   width(proj), stride)
            blocks.append(block)
            channels = block.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(channels, num_classes) if num_classes else nn.Identity()

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes, global_pool="avg"):
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x):  # (B, 3, H, W) -> (B, C, H / 32, W / 32)
        return self.blocks(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.dropout(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def reverse_input_channels(state_dict: dict, key: str = "stem.0.0.weight") -> dict:
    """A checkpoint trained on BGR input made to take RGB (or back): `conv1`'s channels reversed."""
    state_dict = dict(state_dict)
    state_dict[key] = state_dict[key].flip(1)
    return state_dict


default_cfgs = generate_default_cfgs({
    "bninception": {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": (128 / 255, 117 / 255, 104 / 255),
        "std": (1 / 255, 1 / 255, 1 / 255),
        "first_conv": "stem.0.0",
        "classifier": "fc",
    },
})


@register_model
def bninception(pretrained=False, **kwargs) -> BNInception:
    """BN-Inception / Inception V2; no weights to download: pass a file with pretrained_cfg_overlay."""
    return build_model_with_cfg(BNInception, "bninception", pretrained, **kwargs)
