"""Command line: ``python -m pyxconv [demo | train [options]]``.

``demo`` prints lecture 001's 5x5x3 convolution example (WE-07) computed by
pyxconv. ``train`` trains LeNet-5 on handwritten digits (scikit-learn's 8x8
digits by default, ``--data DIR`` for MNIST-format data); ``python -m pyxconv
train --help`` lists its options.
"""
import argparse
import sys

import numpy as np


def demo():
    """Print WE-07: a 5x5x3 input, two 3x3x3 filters, bias (1, 0), pad 1, stride 2."""
    from pyxconv.functional import conv2d

    x = np.array([
        [[1, 1, 0, 2, 1], [2, 1, 0, 2, 0], [2, 2, 1, 2, 2], [0, 2, 2, 1, 2], [2, 1, 0, 0, 2]],
        [[1, 2, 1, 0, 2], [2, 0, 0, 0, 2], [0, 2, 0, 1, 0], [1, 2, 0, 1, 2], [1, 0, 2, 0, 1]],
        [[2, 0, 0, 0, 1], [0, 0, 0, 1, 0], [1, 1, 0, 2, 1], [0, 0, 0, 2, 1], [0, 1, 1, 2, 2]],
    ])[None]
    w = np.array([
        [[[-1, 0, 0], [-1, -1, 1], [0, 1, -1]], [[-1, 0, -1], [1, -1, 0], [0, 1, -1]],
         [[0, -1, -1], [1, 1, -1], [-1, -1, -1]]],
        [[[0, 1, 1], [1, 1, -1], [-1, 1, -1]], [[1, -1, 0], [1, 1, 1], [-1, 1, 0]],
         [[0, 1, -1], [0, 1, 1], [1, 0, 0]]],
    ])
    b = np.array([1, 0])
    out = conv2d(x, w, b, stride=2, padding=1)
    print("WE-07: input 5x5x3, two 3x3x3 filters, bias (1, 0), zero pad 1, stride 2")
    print(f"output size (5 + 2*1 - 3) / 2 + 1 = {out.shape[-1]}")
    for k in range(out.shape[1]):
        print(f"o[:, :, {k}] =")
        print(out[0, k].astype(int))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "train":
        from pyxconv import train

        parser = argparse.ArgumentParser(prog="python -m pyxconv train",
                                         description=train.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        train.add_arguments(parser)
        train.main_from_args(parser.parse_args(argv[1:]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m pyxconv", description=__doc__)
    parser.add_argument("command", nargs="?", default="demo", choices=["demo", "train"],
                        help="what to run (default: demo)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
