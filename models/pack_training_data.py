"""Pack the training subset the shipped models were trained on.

The GPU machine receives at most 64 MiB with the repository, so the shipped
models saw a pack of ../shared/data/train/natural: every image of
imagenet-sample, bsds500, curban100 and csun_hays80 resized to a long side of
256 (JPEG quality 90, 4:4:4), and the first 45 Tiny ImageNet images of each of
its 202 classes as they are (10,474 files, 49 MB).

Run from the repository root: python models/pack_training_data.py [SRC] [DST] [LONG_SIDE]
(LONG_SIDE 512 gives the pack of the runs that train crop consistency, whose
cut-outs need images several times larger than the 128 px crop.)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PIL import Image

LARGE = ("imagenet-sample", "bsds500", "curban100", "csun_hays80")
TINY_PER_CLASS = 45
LONG_SIDE = 256


def main(src: str = "../shared/data/train/natural", dst: str = ".train_pack", long_side: str = str(LONG_SIDE)) -> None:
    src_dir, dst_dir = Path(src), Path(dst)
    count = 0
    for name in LARGE:
        out = dst_dir / name
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted((src_dir / name).rglob("*")):
            if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".tif", ".tiff"}:
                continue
            image = Image.open(path).convert("RGB")
            image.thumbnail((int(long_side), int(long_side)), Image.LANCZOS)
            image.save(out / f"{path.stem}.jpg", quality=90, subsampling=0)
            count += 1
    for folder in sorted((src_dir / "tinyimagenet").iterdir()):
        out = dst_dir / "tinyimagenet" / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.rglob("*.JPEG"))[:TINY_PER_CLASS]:
            shutil.copy(path, out / path.name)
            count += 1
    print(f"packed {count} images into {dst_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:])
