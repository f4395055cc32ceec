"""Refit a bundle's out-of-domain check on its own training slices.

Reads the bundle's training split (``training/split.json``), fits the Gaussian on the training
slices' features of the chosen kind (``--features``: the classifier's pooled features, the
default, or the SAM embedding's channel means; see :mod:`adasam.domain` for what each is good
and bad at) and calibrates the threshold on the validation slices (and on every slice of each
``--extra-val`` folder, at its own size), then rewrites the bundle in place (or to ``--out``).
Only the domain model and ``config.domain`` change, so no retraining.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from adasam.errors import ConfigError
from adasam.settings import Settings

if TYPE_CHECKING:
    from adasam.training.data import Split

# adasam.config.DOMAIN_FEATURES (importing adasam.config here would load torch for --help;
# tests/adasam/test_domain.py checks the two agree)
FEATURES = ("classifier", "sam-embedding")
HELP = "refit a bundle's out-of-domain check on its training slices (no retraining)"
NAME = "domain-fit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    parser.add_argument("--data", required=True, type=Path, help="the bundle's training data")
    parser.add_argument(
        "--features",
        choices=FEATURES,
        default="classifier",
        help="what the Gaussian models (default: the classifier's pooled features)",
    )
    parser.add_argument(
        "--split",
        type=Path,
        help="split JSON with 'labeled', 'unlabeled', 'val' indices "
        "(default: BUNDLE/training/split.json)",
    )
    parser.add_argument(
        "--embedding-cache", type=Path, help="embedding store to read (frozen encoders only)"
    )
    parser.add_argument(
        "--extra-val",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="more in-domain slices for the threshold only, each folder's slices at their own "
        "size (e.g. the bundle's kind of phantom rendered at 384² or 512², or your own "
        "scans): the check then accepts that anatomy at those resolutions; repeatable",
    )
    parser.add_argument("--out", type=Path, help="write the bundle here (default: in place)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _read_split(path: Path) -> Split:
    """The split, with the ≥ 2 training and ≥ 1 validation slices the fit needs."""
    from adasam.training.data import read_split

    split = read_split(path)
    if len(split.training) < 2 or not split.val:
        raise ConfigError(f"{path}: need ≥ 2 training and ≥ 1 validation slices")
    return split


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.bundle import load_bundle, save_bundle
    from adasam.embedding_store import EmbeddingStore, encoder_identity
    from adasam.training.data import SPLIT_FILE, check_split_range, load_dataset, native_size
    from adasam.training.loop import fit_bundle_domain

    bundle = load_bundle(args.bundle, args.device)
    if bundle.config.domain is None:
        raise ConfigError(f"{args.bundle} has no domain section to refit; retrain it instead")
    split_path = args.split or args.bundle / "training" / SPLIT_FILE
    split = _read_split(split_path)  # before the data: a bad split fails fast
    size = int(bundle.config.training.get("size", 256))
    data = load_dataset(args.data, size, None, bundle.config.window)
    check_split_range(split, len(data.images), split_path)
    store = None
    if args.embedding_cache is not None:
        store = EmbeddingStore(args.embedding_cache, encoder_identity(bundle.config, bundle.sam))
    extra = [load_dataset(d, native_size(d), None, bundle.config.window) for d in args.extra_val]
    old = bundle.config.domain
    fitted = fit_bundle_domain(
        bundle,
        data,
        list(split.training),
        list(split.val),
        replace(old, features=args.features),
        store=store,
        progress=not args.quiet,
        extra_val=extra,
    )
    out = args.out or args.bundle
    save_bundle(fitted, out)
    new = fitted.config.domain
    assert new is not None
    print(
        f"domain check of {out}: {old.features} (threshold {old.threshold:.2f}) → "
        f"{new.features} (threshold {new.threshold:.2f}), fitted on {new.n_fit} slices, "
        f"calibrated on {new.n_val}"
    )
    return 0
