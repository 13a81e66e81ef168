"""The pieces every HTML export shares: escaping, the page shell with its security policy, the
stylesheet, the reply-length chart, and writing a page privately.

Everything read from a transcript is untrusted — replies and thinking, but also agent and pairing
names, prompts, model ids and error messages — so it reaches the page only through `esc`, which
first makes control and bidi-override characters visible (as on the terminal: `␛[2J`) and then
escapes it for HTML, quotes included, so the same value is safe as text and inside an attribute.
The pages carry a Content-Security-Policy that allows no remote load at all and only the one
inline stylesheet and script generated here (by hash), so even a mistake elsewhere could not make
a page fetch anything or run injected code.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Callable, Sequence

from intermodel.records import Turn
from intermodel.security.text import terminal_safe

__all__ = ["chart_svg", "esc", "page"]

# The agent speaking first is "a" (left column, blue), the other "b" (right column, orange).
COLOURS = {"a": "#2563a8", "b": "#c2610c"}

STYLE = """
:root { color-scheme: light dark; --a: #2563a8; --b: #c2610c; --muted: #6b7280;
  --line: #d1d5db; --card: #f8fafc; }
@media (prefers-color-scheme: dark) { :root { --card: #1f2937; --line: #374151; } }
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1200px; margin: 1.5rem auto;
  padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.sortable th { cursor: pointer; } .sortable th:hover { text-decoration: underline; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.muted, .facts { color: var(--muted); font-size: .85em; }
.columns { display: flex; gap: 1.2rem; } .columns > * { flex: 1; min-width: 0; }
.conversation { display: flex; flex-direction: column; gap: .6rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr));
  gap: 1.2rem; }
.answers .turn, .answers .turn.b { width: 100%; margin-bottom: .4rem; }
.turn { width: calc(50% - .6rem); background: var(--card); border-radius: .4rem;
  padding: .5rem .8rem; border-left: 4px solid var(--a); box-sizing: border-box; }
.turn.b { align-self: flex-end; border-left-color: var(--b); }
.turn header { margin-bottom: .3rem; } .who { font-weight: 600; }
.turn.a .who { color: var(--a); } .turn.b .who { color: var(--b); }
.empty { font-style: italic; color: var(--muted); }
details.thinking { margin: .3rem 0; color: var(--muted); }
details.thinking summary, details.note summary { cursor: pointer; }
.interjection { border: 1px dashed var(--muted); border-radius: .4rem; padding: .4rem .8rem; }
.note { font-size: .85em; color: var(--muted); padding-left: .4rem; }
.note.warn { color: #b45309; } .end { font-weight: 600; }
.labels { margin-top: .3rem; display: flex; flex-wrap: wrap; gap: .3rem; }
.label { font-size: .8em; border: 1px solid var(--line); border-radius: .8rem;
  padding: 0 .5rem; } .label.none { color: var(--muted); font-style: italic; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: currentColor; }
@media (max-width: 800px) {
  .columns { flex-direction: column; }
  .turn { width: 100%; } .turn.b { width: calc(100% - 1.5rem); }
}
"""

# Sorting for the index page's tables. Reads cells' text (or data-v) only; writes nothing but row
# order, so no transcript content is ever interpreted.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
      th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
      function key(row) {
        var cell = row.cells[col];
        return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
      }
      rows.sort(function (x, y) {
        var a = key(x), b = key(y), na = parseFloat(a), nb = parseFloat(b);
        if (!isNaN(na) && !isNaN(nb)) { return (na - nb) * dir; }
        if (isNaN(na) !== isNaN(nb)) { return isNaN(na) ? 1 : -1; }  // blanks last
        return a.localeCompare(b) * dir;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value: object) -> str:
    """Untrusted text, inert and escaped for HTML text and (double- or single-quoted)
    attributes alike."""
    return html.escape(terminal_safe(str(value)), quote=True)


def _sha256(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def page(title: str, body: str, *, script: bool = False) -> str:
    """A whole self-contained document; `title` is escaped here, `body` must already be safe."""
    scripts = _sha256(SORT_SCRIPT) if script else "'none'"
    policy = (f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {scripts}; "
              "img-src 'none'; base-uri 'none'; form-action 'none'")
    tail = f"<script>{SORT_SCRIPT}</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n{tail}</body>\n</html>\n"
    )


# ---- the chart --------------------------------------------------------------------------------

Scale = Callable[[float], float]
_W, _H = 760, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40


def chart_svg(turns: Sequence[Turn], sides: dict[str, str]) -> str:
    """Reply length in characters per turn, one line per agent; `sides` maps each agent to
    "a" or "b". Each point links to its turn and names it in a tooltip."""
    # A hand-edited file may hold anything: chart only turns of the types the format promises.
    turns = [t for t in turns if type(t.index) is int and isinstance(t.text, str)]
    if not turns:
        return '<p class="muted">No turns to chart.</p>'
    last = max(t.index for t in turns)
    top = _nice_ceiling(max(len(t.text) for t in turns))
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(index: float) -> float:
        return _LEFT + (plot_w * (index - 1) / (last - 1) if last > 1 else plot_w / 2)

    def y(chars: float) -> float:
        return _TOP + plot_h * (1 - chars / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
             f'height="{_H}" role="img" aria-label="reply length per turn">']
    parts += _axes(last, top, x, y)
    for agent, side in sides.items():
        own = sorted((t for t in turns if t.agent == agent), key=lambda t: t.index)
        if not own:
            continue
        colour = COLOURS[side]
        points = " ".join(f"{x(t.index):.1f},{y(len(t.text)):.1f}" for t in own)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{points}"/>')
        parts += [f'<a href="#t{t.index}"><circle cx="{x(t.index):.1f}" '
                  f'cy="{y(len(t.text)):.1f}" r="3.5" fill="{colour}"><title>turn {t.index} · '
                  f'{esc(agent)}: {len(t.text)} characters</title></circle></a>' for t in own]
    parts += _legend(sides)
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(last: int, top: int, x: Scale, y: Scale) -> list[str]:
    base = _H - _BOTTOM
    out = [f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" stroke="#9ca3af"/>',
           f'<line x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" stroke="#9ca3af"/>']
    for value in (0, top // 2, top):
        out.append(f'<text x="{_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                   f'{value}</text>')
    step = max(1, -(-last // 15))  # at most about 15 labels
    for index in range(1, last + 1, step):
        out.append(f'<text x="{x(index):.1f}" y="{base + 16}" text-anchor="middle">'
                   f'{index}</text>')
    out.append(f'<text x="{_LEFT + (_W - _LEFT - _RIGHT) / 2:.1f}" y="{_H - 4}" '
               'text-anchor="middle">turn</text>')
    out.append(f'<text x="12" y="{_TOP + (_H - _TOP - _BOTTOM) / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_TOP + (_H - _TOP - _BOTTOM) / 2:.1f})">'
               'characters</text>')
    return out


def _legend(sides: dict[str, str]) -> list[str]:
    out = []
    for row, (agent, side) in enumerate(sides.items()):
        top = _TOP + 4 + 16 * row
        out.append(f'<rect x="{_W - _RIGHT - 150}" y="{top}" width="10" height="10" '
                   f'fill="{COLOURS[side]}"/>')
        out.append(f'<text x="{_W - _RIGHT - 134}" y="{top + 9}">{esc(agent[:24])}</text>')
    return out


def _nice_ceiling(value: int) -> int:
    """A round number at or above `value` for the top of the axis (10, 20, 50, 100, ...)."""
    nice = 10
    while nice < value:
        nice = _next_nice(nice)
    return nice


def _next_nice(value: int) -> int:
    scale = int("1" + "0" * (len(str(value)) - 1))  # 10 ** digits, as an int for the type checker
    lead = value // scale
    return (2 if lead == 1 else 5 if lead == 2 else 10) * scale
