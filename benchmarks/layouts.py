"""Parameter layouts that match real models, as lists of shapes."""


def many_small():
    """2,000 tensors of 1,000 elements: per-tensor overhead dominates."""
    return [(1000,)] * 2000


def resnet18():
    """The 62 parameter tensors of torchvision's ResNet-18 (11.7M params)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = in_ch if block == 0 else out_ch
            shapes += [(out_ch, first_in, 3, 3), (out_ch,), (out_ch,), (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and (stride != 1 or in_ch != out_ch):
                shapes += [(out_ch, in_ch, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    shapes += [(1000, 512), (1000,)]
    return shapes


def transformer(blocks=4, width=512):
    """`blocks` pre-norm transformer blocks (attention + 4x MLP), 12 tensors each."""
    shapes = []
    for _ in range(blocks):
        shapes += [(width,), (width,), (3 * width, width), (3 * width,), (width, width), (width,)]
        shapes += [(width,), (width,), (4 * width, width), (4 * width,), (width, 4 * width), (width,)]
    return shapes


def large():
    """4 tensors of 16M elements: memory bandwidth dominates."""
    return [(16 * 1024 * 1024,)] * 4


LAYOUTS = {"many_small": many_small, "resnet18": resnet18, "transformer": transformer, "large": large}


def numel(shapes):
    total = 0
    for shape in shapes:
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
