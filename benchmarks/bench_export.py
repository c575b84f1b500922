"""File size and write time of every export format (issue 18), for two avatar sizes.

The avatars are template-initialised splats (colour only, SH degree 0) with random rotations
(a fitted avatar's splats are turned; the template's are not): the default template (face
levels 2, rest 1: 41,998 splats) and 110,000 splats drawn at random (seeded) from the template
at face levels 3 (129,758). Each format is written with ``export_avatar`` at its default up axis;
the table gives bytes, bytes per splat, the size against the 62-float PLY and the write time.

    python benchmarks/bench_export.py                        # the markdown table on stdout
    python benchmarks/bench_export.py --out sizes.json       # and the numbers as JSON
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from arc2avatar._io import atomic_write_text
from arc2avatar.avatar.export import FORMAT_NAMES, export_avatar, formats
from arc2avatar.avatar.template import TemplateConfig
from arc2avatar.avatar.model import Avatar
from arc2avatar.avatar.template import build_head
from arc2avatar.pipeline.meanface import initial_splats

SIZES = {"40K": ((2, 1), None), "110K": ((3, 1), 110_000)}  # (face, rest levels), splats kept


def make_avatar(levels: tuple[int, int], keep: int | None, seed: int = 0) -> Avatar:
    setup = build_head(TemplateConfig(face_levels=levels[0], rest_levels=levels[1]))
    splats = initial_splats(setup)
    generator = torch.Generator().manual_seed(seed)
    if keep is not None:
        splats = splats.select(torch.randperm(splats.num_splats, generator=generator)[:keep].sort().values)
    with torch.no_grad():
        splats.params["quats"].copy_(torch.randn(splats.num_splats, 4, generator=generator))
    return Avatar(splats, template=dict(setup.info))


def measure(avatar: Avatar, folder: Path) -> list[dict]:
    rows = []
    for name in FORMAT_NAMES:
        path = folder / f"avatar{formats()[name].suffixes[0]}"
        started = time.perf_counter()
        export_avatar(avatar, path, format=name, morph_targets=False)
        seconds = time.perf_counter() - started
        rows.append({"format": name, "bytes": path.stat().st_size, "seconds": round(seconds, 2)})
        path.unlink()
    unity = next(r["bytes"] for r in rows if r["format"] == "ply-unity")
    for row in rows:
        row["bytes_per_splat"] = round(row["bytes"] / avatar.splats.num_splats, 1)
        row["fraction_of_unity_ply"] = round(row["bytes"] / unity, 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (levels, keep) in SIZES.items():
            avatar = make_avatar(levels, keep)
            measure(avatar, Path(tmp))  # warm-up (gsply's numba kernels compile on first use)
            results[label] = {"splats": avatar.splats.num_splats, "formats": measure(avatar, Path(tmp))}
    print("| format | " + " | ".join(f"{k} ({v['splats']:,} splats)" for k, v in results.items()) + " |")
    print("|---|" + "---|" * len(results))
    for i, name in enumerate(FORMAT_NAMES):
        cells = []
        for value in results.values():
            row = value["formats"][i]
            cells.append(f"{row['bytes'] / 1e6:.2f} MB · {row['bytes_per_splat']} B/splat · "
                         f"{row['fraction_of_unity_ply']:.3f} · {row['seconds']} s")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
