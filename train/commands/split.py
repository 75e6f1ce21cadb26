"""`train split`: write the train/validation/test splits file of a Severstal-format folder."""

from __future__ import annotations

from edge.errors import DataError


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="folder with train_images/ and train.csv")
    parser.add_argument("--out", required=True, help="splits JSON file to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--groups", default=None, help="CSV 'ImageId,<group>': no group spans two splits"
    )
    parser.add_argument(
        "--fractions",
        default=None,
        help="train,validation,test shares (default the paper's 10482,2790,1558)",
    )
    parser.add_argument(
        "--class-map", default=None, help="Severstal id:project id pairs, e.g. 1:1,2:0,3:2,4:3"
    )


def _parse_fractions(text: str | None):
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise DataError(f"--fractions '{text}' is not three comma-separated numbers") from None


def run(args) -> int:
    from train.data import splits as splits_module
    from train.data.classmap import ClassMap
    from train.data.folder import SeverstalFolder

    class_map = ClassMap.parse(args.class_map) if args.class_map else None
    folder = SeverstalFolder.open(args.data, class_map)
    groups = splits_module.read_groups(args.groups) if args.groups else None
    fractions = _parse_fractions(args.fractions)
    splits = splits_module.make_splits(folder, args.seed, fractions, groups)
    meta = {
        "data": str(folder.root),
        "data_hash": folder.content_hash(),
        "class_map": folder.class_map.to_text(),
        "seed": args.seed,
        "fractions": fractions or list(splits_module.DEFAULT_FRACTIONS),
        "groups": args.groups,
        "counts": {name: len(ids) for name, ids in splits.items()},
    }
    path = splits_module.write_splits(args.out, splits, meta)
    names = folder.class_names
    print(f"{'split':<12}{'images':>8}{'defect-free':>13}" + "".join(f"{n:>18}" for n in names))
    for name, ids in splits.items():
        labels = folder.labels_of(ids)
        free = int((~labels.any(axis=1)).sum())
        per_class = "".join(f"{int(v):>18}" for v in labels.sum(axis=0))
        print(f"{name:<12}{len(ids):>8}{free:>13}{per_class}")
    print(f"wrote {path}")
    return 0
