#!/usr/bin/env python3
"""Write the Fashion-MNIST slice used by the wgcnn tests.

Reads the full gzip IDX files (by default from /usr/share/datasets/fashion-mnist, the
location used by Debian's dataset-fashion-mnist package) and writes the first 3000
training and the first 1000 test images and labels, as gzip IDX files with the
original file names, into the folder of this script.

Usage: python3 make_slice.py [SOURCE_DIR]
"""

import gzip
import os
import struct
import sys

SPLITS = {"train": 3000, "t10k": 1000}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        sys.exit(f"{path}: IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def write_idx(path, magic, dims, payload):
    header = struct.pack(f">I{len(dims)}I", magic, *dims)
    # mtime=0 keeps the output byte-identical across runs.
    with open(path, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
    ) as f:
        f.write(header + payload)


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    target = os.path.dirname(os.path.abspath(__file__))
    for split, count in SPLITS.items():
        images = f"{split}-images-idx3-ubyte.gz"
        labels = f"{split}-labels-idx1-ubyte.gz"

        (n, rows, cols), pixels = read_idx(os.path.join(source, images), IMAGES_MAGIC)
        (n_labels,), label_bytes = read_idx(os.path.join(source, labels), LABELS_MAGIC)
        if n < count or n_labels != n:
            sys.exit(f"{source}: {split} has {n} images and {n_labels} labels, need {count}")

        write_idx(
            os.path.join(target, images),
            IMAGES_MAGIC,
            (count, rows, cols),
            pixels[: count * rows * cols],
        )
        write_idx(os.path.join(target, labels), LABELS_MAGIC, (count,), label_bytes[:count])
        print(f"{split}: wrote {count} of {n} images ({rows}x{cols}) and labels")


if __name__ == "__main__":
    main()
