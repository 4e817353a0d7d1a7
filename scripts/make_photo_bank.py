#!/usr/bin/env python3
"""Build data/photos.safetensors: a small bank of real photographs for the synthetic training world.

The photographs are the sample images shipped in Debian's python3-skimage package (the package need not be
installed; its .deb is only unpacked):

    cd /tmp && apt-get download python3-skimage && dpkg -x python3-skimage_*.deb skimg
    python3 scripts/make_photo_bank.py /tmp/skimg/usr/lib/python3/dist-packages/skimage/data data/photos.safetensors

Needs Debian's python3-pil and python3-numpy. Each photo is resized to at most 256 pixels on its longer side
(aspect kept) and stored as one U8 tensor [H, W, 3] named after the photo. Greyscale photos are stored as three
equal channels (the world tints them). The "__metadata__" block holds, per photo, "licence.<name>" and
"description.<name>" (the words a caption uses, e.g. "a cat"). The safetensors file is written by hand so that
nothing beyond numpy and PIL is needed.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MAX_SIDE = 256

# name -> (file, description, licence/credit as stated in scikit-image's data documentation)
PHOTOS = {
    "astronaut": ("astronaut.png", "an astronaut",
                  "Public domain: NASA Great Images database (Eileen Collins); no known copyright restrictions"),
    "chelsea": ("chelsea.png", "a cat", "CC0 by the photographer (Stefan van der Walt)"),
    "coffee": ("coffee.png", "a coffee cup",
               "CC0 by the photographer (Rachel Michetti); courtesy of Pikolo Espresso Bar"),
    "motorcycle": ("motorcycle_left.png", "a motorcycle",
                   "Middlebury 2014 stereo dataset (Scharstein et al., Middlebury College), down-sampled copy "
                   "distributed with scikit-image under its BSD-3-Clause licence"),
    "rocket": ("rocket.jpg", "a rocket launch",
               "Public domain: SpaceX photo of the DSCOVR launch, released into the public domain"),
    "hubble": ("hubble_deep_field.jpg", "a starry sky",
               "Public domain: NASA Hubble eXtreme Deep Field (HubbleSite), may be freely used"),
    "retina": ("retina.jpg", "a retina",
               "CC0 1.0: Mikael Haeggstroem, Fundus photograph of normal left eye (Wikimedia Commons)"),
    "ihc": ("ihc.png", "stained tissue",
            "No known copyright restrictions: Center for Microscopy And Molecular Imaging (CMMI)"),
    "camera": ("camera.png", "a photographer",
               "CC0 by the photographer (Lav Varshney)"),
    "brick": ("brick.png", "a brick wall", "CC0: CC0Textures Bricks25 (grey, perspective-corrected)"),
    "grass": ("grass.png", "grass", "CC0: linolafett on DeviantArt, Grass-01 (grey crop)"),
    "gravel": ("gravel.png", "gravel", "CC0: CC0Textures Gravel04 (grey crop)"),
}

# Crops (left, top, right, bottom as fractions) that drop large empty borders before resizing.
CROPS = {"retina": (0.17, 0.17, 0.83, 0.83)}


def load(folder: Path, name: str) -> np.ndarray:
    image = Image.open(folder / PHOTOS[name][0]).convert("RGB")
    if name in CROPS:
        l, t, r, b = CROPS[name]
        w, h = image.size
        image = image.crop((round(l * w), round(t * h), round(r * w), round(b * h)))
    w, h = image.size
    scale = MAX_SIDE / max(w, h)
    if scale < 1:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))  # [H, W, 3]


def write_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, array in tensors.items():
        raw = array.tobytes()
        header[name] = {"dtype": "U8", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data buffer starts 8-byte aligned
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    tmp.replace(path)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    tensors, metadata = {}, {}
    for name, (_, description, licence) in PHOTOS.items():
        tensors[name] = load(folder, name)
        metadata["description." + name] = description
        metadata["licence." + name] = licence
        print(f"{name:12s} {tensors[name].shape}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(out, tensors, metadata)
    print(f"wrote {out}: {out.stat().st_size} bytes, {len(tensors)} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
