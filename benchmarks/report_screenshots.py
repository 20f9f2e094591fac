"""Check the report in a real browser: rebuild report.html from results.json files and screenshot
each page with headless Chromium, so a person can look at what a reader sees.

    python benchmarks/report_screenshots.py                      # full and quick run
    python benchmarks/report_screenshots.py --height 4000 --out /tmp/shots \
        docs/results/full-run:full                             # the top 4000 px only

Each ``RESULTS[:NAME]`` is a results.json or the folder holding one; its report is rebuilt
(``rapidnn.report.build.write_report``, the code of ``rapidnn report``, results.json left as
it is) into a temporary folder and screenshot to ``OUT/report-NAME.png`` (default
``docs/screenshots/``) in a 1280 x ``--height`` px window (tall enough for the whole page by
default). The blank page below the report is cut off, the PNG scaled to at most
``--max-width`` px and saved with an adaptive palette, so it stays small enough (about 1 MB)
to keep in the repository.

Chromium is not a project dependency (``apt-get install -y chromium``); without it the script
exits with status 2 and says so. Pillow (a dependency of matplotlib) shrinks the PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from rapidnn.experiments.merge import load_results
from rapidnn.report.build import write_report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [f"{ROOT / 'docs/results/full-run'}:full", f"{ROOT / 'docs/results/quick'}:quick"]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
#: Chromium's flags for one screenshot: no sandbox (root in a container), no GPU, no network
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def find_chromium() -> str | None:
    """The first Chromium on PATH (or /usr/bin/chromium), or None."""
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int) -> None:
    """Render ``page`` in headless Chromium at ``width`` x ``height`` px into ``png``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=180)
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")


def shrink(png: Path, max_width: int) -> None:
    """Cut the blank page below the report off ``png``, scale it to at most ``max_width`` px
    wide and save it palettised."""
    with Image.open(png) as image:
        image.load()
    ink = image.convert("L").point(lambda v: 255 if v < 200 else 0).getbbox()
    if ink is not None:
        image = image.crop((0, 0, image.width, min(image.height, ink[3] + 40)))
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)),
                             Image.LANCZOS)
    image.convert("RGB").quantize(colors=128).save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="*", default=DEFAULT,
                    help="RESULTS[:NAME] (results.json or its folder; NAME: the PNG's suffix)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--width", type=int, default=1280, help="browser window width (px)")
    ap.add_argument("--height", type=int, default=20000,
                    help="browser window height (px): how much of the page is captured")
    ap.add_argument("--max-width", type=int, default=1000, help="width of the kept PNG (px)")
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("report_screenshots: Chromium not found (not a project dependency; install it "
              "with `apt-get install -y chromium`)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.results:
        source, _, name = spec.partition(":")
        name = name or Path(source).stem
        with tempfile.TemporaryDirectory() as tmp:
            write_report(load_results(source), Path(tmp))
            png = args.out / f"report-{name}.png"
            screenshot(chromium, Path(tmp) / "report.html", png, args.width, args.height)
        shrink(png, args.max_width)
        print(f"{png}: {png.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
