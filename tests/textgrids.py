"""Praat TextGrid files written out for the tests (long and short text formats)."""

from __future__ import annotations

Tier = tuple[str, str, list[tuple]]  # (class, name, intervals (xmin, xmax, text) or points)


def textgrid(tiers: list[Tier], long: bool = True) -> str:
    """The text of a TextGrid holding ``tiers``; xmax is the last interval's end."""
    xmax = max(it[1] for cls, _, items in tiers if cls == "IntervalTier" for it in items)
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', ""]
    out += ["xmin = 0 ", f"xmax = {xmax} ", "tiers? <exists> ", f"size = {len(tiers)} ",
            "item []: "] if long else ["0", str(xmax), "<exists>", str(len(tiers))]
    for i, (cls, name, items) in enumerate(tiers, start=1):
        if long:
            kind = "intervals" if cls == "IntervalTier" else "points"
            out += [f"    item [{i}]:", f'        class = "{cls}" ', f'        name = "{name}" ',
                    "        xmin = 0 ", f"        xmax = {xmax} ",
                    f"        {kind}: size = {len(items)} "]
            for k, it in enumerate(items, start=1):
                out.append(f"        {kind} [{k}]:")
                if cls == "IntervalTier":
                    out += [f"            xmin = {it[0]} ", f"            xmax = {it[1]} ",
                            f'            text = "{it[2]}" ']
                else:
                    out += [f"            number = {it[0]} ", f'            mark = "{it[1]}" ']
        else:
            out += [f'"{cls}"', f'"{name}"', "0", str(xmax), str(len(items))]
            for it in items:
                out += [str(v) if not isinstance(v, str) else f'"{v}"' for v in it]
    return "\n".join(out) + "\n"
