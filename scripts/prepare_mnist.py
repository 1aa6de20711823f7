"""Converts the MNIST / Fashion-MNIST IDX files (gzipped or not) into one Parquet file.

    uv run python scripts/prepare_mnist.py ~/data/mnist data/mnist.parquet
    uv run python -m dlexp.train dataset=mnist dataset.path=data/mnist.parquet

The table holds `image` (uint8 28x28), `label` (0-9) and `split` (train / val / test:
val is a seeded random 5,000 of the training images, test the t10k files).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dlexp.data.idx import mnist_frame  # noqa: E402
from dlexp.errors import DlexpError  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("folder", help="folder holding train-images-idx3-ubyte[.gz] and the three others")
    p.add_argument("out", help="the Parquet file to write")
    p.add_argument("--val-rows", type=int, default=5000, help="training images held out as val (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        df = mnist_frame(args.folder, args.val_rows, args.seed)
    except DlexpError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    df.write_parquet(args.out)
    print(f"wrote {args.out}: {df.height} rows, {dict(df.group_by('split').len().iter_rows())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
