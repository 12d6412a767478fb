"""``cmagrounding pack-features``: pack a folder of ``.npy`` features or an HDF5 file into one
memory-mapped file with an index, which ``train`` and ``evaluate`` then read (docs/training.md).

    cmagrounding pack-features data/charades_i3d                  # packs beside the .npy files
    cmagrounding pack-features data/anet_c3d.hdf5 -o data/anet_c3d_packed --hdf5-key c3d_features
    cmagrounding pack-features data/charades_i3d --verify         # check the packed store's checksum
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    parser.add_argument("source", help="folder of <video>.npy features, an .h5/.hdf5 file, or (with --verify) a packed store")
    parser.add_argument("-o", "--output", help="folder to write the packed store into (default: the source folder; "
                                               "for an HDF5 file, <file>-packed beside it)")
    parser.add_argument("--hdf5-key", help="dataset inside each video's HDF5 group (ActivityNet C3D: c3d_features); "
                        "for a folder of .npz files, the array's name (default features)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="stored precision (float16 halves the file; values are rounded)")
    parser.add_argument("--verify", action="store_true", help="only check an existing packed store (sizes and checksum)")


def run(args: argparse.Namespace) -> int:
    from cmagrounding.training.packed import PackedStore
    from cmagrounding.training.packing import pack_features

    source = Path(args.source)
    if args.verify:
        store = PackedStore(source)
        store.verify()
        print(f"{store!r}: sizes and checksum match its index")
        return 0
    out = Path(args.output) if args.output else (source if source.is_dir() else source.with_name(source.stem + "-packed"))
    from cmagrounding._paths import check_output_folder

    check_output_folder("--output", out, inputs={"source": source})
    t0 = time.perf_counter()
    store = pack_features(source, out, dtype=args.dtype, key=args.hdf5_key)
    size = store.data_path.stat().st_size
    print(f"packed {len(store)} videos ({store.rows} rows x {store.dim}, {store.dtype.name}, {size / 2**20:.1f} MiB) "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"index: {store.index_path}   data: {store.data_path}")
    if store.extraction is None:
        print("no extraction settings recorded beside the source (no index.json or video_config.json)")
    return 0
