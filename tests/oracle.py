"""Helpers for tests that use OpenCV 4's darknet importer as the oracle."""

from __future__ import annotations

import re


def with_threshold(cfg_text: str, thresh: float) -> str:
    """``cfg_text`` with ``thresh`` set in every [yolo] and [region] section.

    OpenCV's output layers zero every class score not above the cfg's ``thresh`` (0.2 when
    unset): comparing with their rows needs the cfg patched to 0 first. yolocli itself never
    patches a cfg (it decodes the raw heads), so this lives with the tests.
    """
    out: list[str] = []
    in_output_layer = False
    for line in cfg_text.splitlines():
        stripped = line.strip().lower()
        if stripped.startswith("["):
            if in_output_layer:
                out.append(f"thresh={thresh!r}")
            in_output_layer = stripped in ("[yolo]", "[region]")
        elif in_output_layer and re.match(r"thresh\s*=", stripped):
            continue  # replaced by ours at the end of the section
        out.append(line)
    if in_output_layer:
        out.append(f"thresh={thresh!r}")
    return "\n".join(out) + "\n"
