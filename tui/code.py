"""Coding by hand: `intermodel code` shows one target at a time with the context it needs, and
every label a person picks goes to the sidecar beside its transcript before the screen moves on.

The screen: a header (the scheme, the coder, blind or not), the context on the left (the
conversation up to the turn being coded, a panel's message and the answer, or a whole run; the
target framed), the scheme on the right (its instructions and labels with their keys; `?` hides
it), a status line (where the coder is, progress, their label for this target) and a note bar.

Keys: a label's number picks it (single choice: recorded at once, then the next target; multiple
choice: toggled, and Enter records the set); `n` writes a note (the rationale), kept with the
label; → / ← (or `]` / `[`) move, `u` jumps to the next target not yet coded; `t` shows or hides
thinking; `q` quits (nothing is pending: every pick is already on disk).

All text from transcripts reaches the screen through `plain` (escape sequences shown, never
obeyed; brackets never read as markup). What a target's context holds, and how a blind session
hides names, is decided in the core (`intermodel.coding.targets`); this module only draws it.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Input, Label, Static

from intermodel.coding.labels import MAX_TEXT
from intermodel.coding.session import CodingSession
from intermodel.coding.targets import CodingUnit, ViewEntry
from intermodel.errors import IntermodelError

from .text import plain

__all__ = ["CodingApp", "label_key", "reflow", "run_coding"]

# The keys of the first ten labels; a scheme has at most 20, and `l` picks any by number.
_DIGITS = "1234567890"


def reflow(text: str) -> str:
    """Scheme text as paragraphs: a TOML file's hard line breaks within a paragraph become
    spaces, so the side panel wraps it to its own width; blank lines and list items stay."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        item = stripped[:2] in ("- ", "* ") or (stripped[:1].isdigit() and ". " in stripped[:4])
        if out and out[-1] and stripped and not item:
            out[-1] += " " + stripped
        else:
            out.append(stripped)
    return "\n".join(out)


def label_key(position: int) -> str:
    """The key that picks the label at `position` (from 0), or "" past the tenth."""
    return _DIGITS[position] if position < len(_DIGITS) else ""


class CodingApp(App[int]):
    CSS_PATH = "code.tcss"
    TITLE = "intermodel code"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"pick({n})", show=False, id=f"code.pick{n}")
          for n, key in enumerate(_DIGITS)),
        Binding("enter", "confirm", "record", id="code.confirm",
                tooltip="Record the labels ticked for this target"),
        Binding("n", "note", "note", id="code.note", tooltip="Write why (the rationale)"),
        Binding("l", "choose", "label #", id="code.choose",
                tooltip="Pick a label by its number or name"),
        Binding("left,left_square_bracket", "move(-1)", "prev", key_display="←",
                id="code.prev"),
        Binding("right,right_square_bracket", "move(1)", "next", key_display="→",
                id="code.next"),
        Binding("u", "uncoded", "next uncoded", id="code.uncoded",
                tooltip="Jump to the next target you have not coded"),
        Binding("t", "thinking", "thinking", id="code.thinking"),
        Binding("question_mark", "scheme", "scheme", key_display="?", id="code.scheme",
                tooltip="Show or hide the instructions and labels"),
        Binding("q", "quit", "quit", id="code.quit"),
    ]

    def __init__(self, session: CodingSession, *, blink: bool = True) -> None:
        super().__init__()
        self.session = session
        self.blink = blink
        self.position = session.resume_at()
        self.thinking_visible = True
        self.ticked: list[str] = []  # a multiple-choice target's labels, not yet recorded
        self.pending_note: str | None = None  # a note written before the target was coded
        self.message = ""  # what the last action did, or why it could not
        self._note_for: str | None = None  # what the note bar was opened for: "note", "label"

    @property
    def unit(self) -> CodingUnit:
        return self.session.units[self.position]

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._header(), id="code-header", markup=False)
        with Horizontal(id="code-body"):
            yield VerticalScroll(id="context")
            with VerticalScroll(id="scheme"):
                yield Static(id="scheme-text", markup=False)
        yield Static(id="code-status", markup=False)
        with Horizontal(id="note-bar", classes="bar"):
            yield Label("note:", id="note-label", markup=False)
            note = Input(id="note-input", max_length=MAX_TEXT)
            note.cursor_blink = self.blink
            yield note
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        self.query_one("#note-bar").display = False
        await self.show_unit()

    def _header(self) -> Content:
        session = self.session
        scheme = session.scheme
        parts: list[Content | str | tuple[str, str]] = [
            ("intermodel code", "bold"), " ─ ", plain(scheme.name),
            f" ({scheme.scope}, {scheme.choice} choice)", " ─ coder ", plain(session.coder.name)]
        if session.blind:
            parts.append(" ─ blind")
        return Content.assemble(*parts)

    async def show_unit(self) -> None:
        """Draw the current target: its context, the scheme with this coder's labels, the
        status."""
        unit = self.unit
        record = self.session.record_of(unit)
        self.ticked = list(record.labels) if record is not None and self._multiple else []
        self.pending_note = None
        view = unit.view()
        context = self.query_one("#context", VerticalScroll)
        context.border_title = plain(f" {view.title} ")
        context.border_subtitle = plain(f" {view.run} ")
        with self.batch_update():
            await context.remove_children()
            blocks: list[Static] = []
            if view.earlier:
                blocks.append(Static(Content(f"… {view.earlier} earlier turns not shown"),
                                     classes="earlier"))
            blocks += [self._block(entry) for entry in view.entries]
            await context.mount_all(blocks)
        self.call_after_refresh(self._scroll_to_target)
        self.refresh_panels()

    def _scroll_to_target(self) -> None:
        """The target in view with as much of the context before it as fits; a target taller
        than the view from its first line."""
        context = self.query_one("#context", VerticalScroll)
        target = next(iter(context.query(".-target")), None)
        if target is None:
            context.scroll_home(animate=False, immediate=True)
        elif target.outer_size.height > context.scrollable_content_region.height:
            context.scroll_to_widget(target, animate=False, top=True, immediate=True)
        else:
            context.scroll_end(animate=False, immediate=True)

    def _block(self, entry: ViewEntry) -> Static:
        if entry.human:
            return Static(Content.assemble((f"✎ {entry.speaker}: ", "bold"), plain(entry.text)),
                          markup=False, classes="code-human")
        head = plain(entry.speaker, "bold")
        if entry.turn is not None:
            head = Content.assemble(f"turn {entry.turn} · ", head)
        if entry.target:
            head = Content.assemble(head, ("  ◀ to code", "bold reverse"))
        parts: list[Content | str | tuple[str, str]] = [head]
        if entry.thinking:
            if self.thinking_visible:
                parts += ["\n", plain(entry.thinking, "italic dim")]
            else:
                parts += ["\n", ("▸ thinking (hidden: t shows it)", "dim")]
        parts += ["\n", plain(entry.text) if entry.text else ("(empty reply)", "dim")]
        return Static(Content.assemble(*parts), markup=False,
                      classes="code-turn -target" if entry.target else "code-turn")

    def refresh_panels(self) -> None:
        self.query_one("#scheme-text", Static).update(self._scheme_text())
        self.query_one("#code-status", Static).update(self._status())

    def _scheme_text(self) -> Content:
        scheme = self.session.scheme
        chosen = self._chosen()
        parts: list[Content | str | tuple[str, str]] = [
            ("Instructions", "bold underline"), "\n", plain(reflow(scheme.instructions)), "\n\n",
            ("Labels", "bold underline"),
            " (press the number" + (", then Enter)" if self._multiple else ")"), "\n"]
        for n, label in enumerate(scheme.labels):
            key = label_key(n) or f"l {n + 1}"
            mark = ("☑ " if label.name in chosen else "☐ ") if self._multiple else (
                "● " if label.name in chosen else "  ")
            parts += ["\n", (f"{key:>4} ", "bold"), mark, plain(label.name, "bold"), "\n",
                      plain(reflow(label.definition), "dim")]
            if label.example:
                parts += ["\n", ("e.g. ", "dim italic"), plain(reflow(label.example), "dim italic")]
            parts.append("\n")
        return Content.assemble(*parts)

    def _chosen(self) -> list[str]:
        if self._multiple:
            return self.ticked
        record = self.session.record_of(self.unit)
        return list(record.labels) if record is not None else []

    def _status(self) -> Content:
        session, unit = self.session, self.unit
        parts: list[Content | str | tuple[str, str]] = [
            (f"{session.progress()}", "bold"),
            f" · target {self.position + 1} of {len(session.units)}"]
        record = session.record_of(unit)
        if record is not None:
            said = ", ".join(record.labels) or "no label"
            stale = "" if session.is_coded(unit) else " (under an older wording: code it again)"
            parts += [" · your label: ", plain(said, "bold"), stale]
            if record.rationale:
                parts += [" · note: ", plain(record.rationale)]
        else:
            parts.append(" · not coded yet")
        if self._multiple:
            parts += [" · ticked: ", plain(", ".join(self.ticked) or "none")]
        if self.pending_note:
            parts += [" · note (kept with the label): ", plain(self.pending_note)]
        if self.message:
            parts += ["\n", plain(self.message, "italic")]
        return Content.assemble(*parts)

    @property
    def _multiple(self) -> bool:
        return self.session.scheme.choice == "multiple"

    # -- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.query_one("#note-bar").display and action not in ("quit",):
            return False  # typing a note: keys are letters, not commands
        if action == "confirm":
            return self._multiple
        return True

    async def action_pick(self, position: int) -> None:
        labels = self.session.scheme.labels
        if position >= len(labels):
            self.message = f"no label {label_key(position)}: this scheme has {len(labels)}"
            self.refresh_panels()
            return
        name = labels[position].name
        if self._multiple:
            if name in self.ticked:
                self.ticked.remove(name)
            else:
                self.ticked.append(name)
                self.ticked.sort(key=self.session.scheme.label_names.index)
            self.message = ""
            self.refresh_panels()
            return
        await self._record([name])

    async def action_confirm(self) -> None:
        if not self.ticked:
            self.message = "tick at least one label first"
            self.refresh_panels()
            return
        await self._record(list(self.ticked))

    async def _record(self, labels: list[str]) -> None:
        """Write the coding of this target, then move on to the next target."""
        unit = self.unit
        record = self.session.record_of(unit)
        note = self.pending_note
        if note is None:
            note = record.rationale if record is not None else ""
        try:
            self.session.code(unit, labels, note)
        except (IntermodelError, ValueError) as exc:
            self.message = f"not recorded: {exc}"
            self.refresh_panels()
            return
        self.message = f"recorded {', '.join(labels)} for {unit.view().title}"
        if self.position + 1 < len(self.session.units):
            self.position += 1
            await self.show_unit()
        else:
            self.ticked = list(labels) if self._multiple else []
            self.pending_note = None
            left = self.session.next_uncoded(self.position)
            self.message += (" · that was the last target" if left is None else
                             " · the last target; u goes to one not yet coded")
            self.refresh_panels()

    async def action_move(self, step: int) -> None:
        position = self.position + step
        if not 0 <= position < len(self.session.units):
            self.message = "this is the " + ("first" if step < 0 else "last") + " target"
            self.refresh_panels()
            return
        self.position = position
        self.message = ""
        await self.show_unit()

    async def action_uncoded(self) -> None:
        found = self.session.next_uncoded(self.position)
        if found is None:
            self.message = f"every target is coded ({len(self.session.units)})"
            self.refresh_panels()
            return
        self.position = found
        self.message = ""
        await self.show_unit()

    async def action_thinking(self) -> None:
        self.thinking_visible = not self.thinking_visible
        position, ticked, note = self.position, self.ticked, self.pending_note
        await self.show_unit()
        self.position, self.ticked, self.pending_note = position, ticked, note
        self.refresh_panels()

    def action_scheme(self) -> None:
        panel = self.query_one("#scheme")
        panel.display = not panel.display

    def action_note(self) -> None:
        record = self.session.record_of(self.unit)
        current = self.pending_note if self.pending_note is not None else (
            record.rationale if record is not None else "")
        self._open_bar("note", "note:", current,
                       "why this label · Enter keeps it · Esc cancels")

    def action_choose(self) -> None:
        self._open_bar("label", "label:", "", "a label's number or name · Enter picks it")

    def _open_bar(self, purpose: str, prompt: str, value: str, placeholder: str) -> None:
        self._note_for = purpose
        self.query_one("#note-label", Label).update(prompt)
        bar = self.query_one("#note-bar")
        bar.display = True
        field = self.query_one("#note-input", Input)
        field.placeholder = placeholder
        field.value = value
        field.cursor_position = len(value)
        field.focus()
        self.refresh_bindings()

    def _close_bar(self) -> None:
        self.query_one("#note-bar").display = False
        self.set_focus(None)
        self.refresh_bindings()

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.query_one("#note-bar").display:
            self._close_bar()
            self.message = "note not changed" if self._note_for == "note" else ""
            self.refresh_panels()

    @on(Input.Submitted, "#note-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        purpose = self._note_for
        self._close_bar()
        if purpose == "label":
            await self._choose(text)
            return
        await self._keep_note(text)

    async def _choose(self, text: str) -> None:
        names = self.session.scheme.label_names
        if text.isdigit() and 1 <= int(text) <= len(names):
            await self.action_pick(int(text) - 1)
        elif text in names:
            await self.action_pick(names.index(text))
        else:
            self.message = f"no label {text[:40]!r}: give a number from 1 to {len(names)} or a name"
            self.refresh_panels()

    async def _keep_note(self, text: str) -> None:
        """A coded target gets a new record with the same labels and this note (it supersedes
        the last); an uncoded one keeps the note until its label is picked."""
        unit = self.unit
        record = self.session.record_of(unit)
        if record is not None and self.session.is_coded(unit):
            try:
                self.session.code(unit, record.labels, text)
            except (IntermodelError, ValueError) as exc:
                self.message = f"note not recorded: {exc}"
            else:
                self.message = "note recorded"
        else:
            self.pending_note = text
            self.message = "note kept: it is recorded with the label you pick"
        self.refresh_panels()


def run_coding(session: CodingSession) -> int:
    """Open the screen over `session` until the coder quits; the exit code."""
    try:
        return CodingApp(session).run() or 0
    finally:
        session.close()
