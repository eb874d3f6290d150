"""Carry the wheels the device lacks (TensorFlow for tf.data, Keras, ...) in parts under a call's limit.

    python benchmarks/split_wheels.py fetch            # here: pip download into .whl/wheels (cp312)
    python benchmarks/split_wheels.py split            # here: .whl/part00 .. partNN + manifest.json
    python3 benchmarks/split_wheels.py join DIR... OUT # there: reassemble the wheels into OUT, sha256-checked

The versions are this environment's (what the zoo is tested with); the platform is the device's
(CPython 3.12, manylinux x86_64). A part is a folder: part00 holds the small wheels and every part
a slice of each big wheel, sized so the tracked tree plus one part stays under the 64 MiB a device
call may carry. See benchmarks/gpu_backends.py's docstring for the calls.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"  # in .gitignore: travels only when carried
# What `zoo.train` of shapes_resnet20 / shapes_retinanet under jax imports that the device image
# lacks (or may hold in a version TensorFlow 2.21 refuses: protobuf, flatbuffers).
CARRIED = {"tensorflow-cpu": "tensorflow", "keras": "keras", "namex": "namex", "optree": "optree",
           "astunparse": "astunparse", "gast": "gast", "google-pasta": "google-pasta",
           "termcolor": "termcolor", "pycocotools": "pycocotools", "protobuf": "protobuf",
           "flatbuffers": "flatbuffers"}  # wheel to fetch -> the installed distribution giving its version
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
CALL_LIMIT_MIB, MARGIN_MIB = 64, 2


def fetch(python_version: str):
    dest = WHEELS / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(dist)}" for name, dist in CARRIED.items()]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "--implementation", "cp", *platforms,
                    "-d", str(dest), *pins], check=True)
    for wheel in sorted(dest.glob("*.whl")):
        print(f"{wheel.stat().st_size / 2**20:8.1f} MiB  {wheel.name}")


def tree_mib() -> float:
    """What every call carries anyway: tracked and untracked-not-ignored files."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    return sum((ROOT / n).stat().st_size for n in names if n and (ROOT / n).is_file()) / 2**20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split(part_mib: float | None):
    wheels = sorted((WHEELS / "wheels").glob("*.whl"))
    if not wheels:
        sys.exit("split_wheels: no wheels in .whl/wheels: run `fetch` first")
    part_mib = part_mib or int(CALL_LIMIT_MIB - tree_mib() - MARGIN_MIB)
    part_bytes = int(part_mib * 2**20)
    for old in WHEELS.glob("part*"):
        shutil.rmtree(old)
    small = [w for w in wheels if w.stat().st_size <= part_bytes // 4]
    big = [w for w in wheels if w not in small]
    manifest = {w.name: sha256(w) for w in wheels}
    parts: list[list[tuple[str, bytes]]] = [[(w.name, w.read_bytes()) for w in small]]
    room = part_bytes - sum(len(b) for _, b in parts[0])
    for wheel in big:
        data, index, offset = wheel.read_bytes(), 0, 0
        while offset < len(data):
            if room <= 0:
                parts.append([])
                room = part_bytes
            piece = data[offset:offset + room]
            parts[-1].append((f"{wheel.name}.chunk{index:03d}", piece))
            offset, index, room = offset + len(piece), index + 1, room - len(piece)
    for number, files in enumerate(parts):
        folder = WHEELS / f"part{number:02d}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for name, data in files:
            (folder / name).write_bytes(data)
        print(f"{folder.relative_to(ROOT)}: {sum(len(d) for _, d in files) / 2**20:.1f} MiB, {len(files)} file(s)")
    print(f"{len(parts)} parts of <= {part_mib} MiB (tree {tree_mib():.1f} MiB + part <= {CALL_LIMIT_MIB} MiB)")


def join(sources: list[Path], out: Path):
    files = {p.name: p for folder in sources for p in sorted(folder.glob("part*/*"))}
    manifest = json.loads(files.pop("manifest.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for wheel, digest in manifest.items():
        chunks = sorted(name for name in files if name.startswith(f"{wheel}.chunk"))
        with (out / wheel).open("wb") as f:
            for name in chunks or [wheel]:
                if name not in files:
                    sys.exit(f"split_wheels: {wheel} is missing from {', '.join(map(str, sources))}: carry every part")
                f.write(files[name].read_bytes())
        if sha256(out / wheel) != digest:
            sys.exit(f"split_wheels: {wheel} reassembled with a wrong sha256: a part is missing or damaged")
        print(f"{(out / wheel).stat().st_size / 2**20:8.1f} MiB  {wheel}  sha256 ok ({len(chunks) or 1} piece(s))")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--python-version", default="3.12", help="the device's Python")
    s = sub.add_parser("split")
    s.add_argument("--part-mib", type=float, help="default: 64 MiB - the tree - 2 MiB")
    j = sub.add_parser("join")
    j.add_argument("paths", nargs="+", type=Path, help="folders holding part*/ ..., then the output folder")
    args = p.parse_args(argv)
    if args.command == "fetch":
        fetch(args.python_version)
    elif args.command == "split":
        split(args.part_mib)
    else:
        if len(args.paths) < 2:
            p.error("join needs at least one source folder and the output folder")
        join(args.paths[:-1], args.paths[-1])


if __name__ == "__main__":
    main()
