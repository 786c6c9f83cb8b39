"""Put a run's answer into the README: the text between the markers
``<!-- answer:begin -->`` and ``<!-- answer:end -->`` of README.md is replaced by
``results/summary/beyond_imagenet.md`` (written by the pipeline's summary rule from
``beyond_imagenet.tsv``; nothing in it is written by hand), its title dropped, preceded by a
line naming the run's command.

    python tools/readme_answer.py [--summary results/summary/beyond_imagenet.md] \\
        [--command "snakemake --cores 2 --config 'studies=[...]'"]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- answer:begin -->", "<!-- answer:end -->"


def replace_answer(readme: str, answer: str, command: str = "") -> str:
    """``readme`` with the block between the markers replaced by ``answer`` (its ``#`` title
    line dropped); ``ValueError`` if the markers are missing."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    body = re.sub(r"\A# [^\n]*\n+", "", answer.strip() + "\n")
    head = f"Generated from the run `{command}`:\n\n" if command else ""
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{head}{body}{END}{after}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary", default=str(ROOT / "results/summary/beyond_imagenet.md"))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    readme = Path(args.readme)
    text = replace_answer(readme.read_text("utf-8"), Path(args.summary).read_text("utf-8"),
                          args.command)  # fmt: skip
    readme.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
