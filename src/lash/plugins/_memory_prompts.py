"""What the observer and reflector model calls are told, and how their answers are read.

Both workers answer in three XML sections: ``<observations>`` (the log), ``<current-task>``
and ``<suggested-response>`` (continuity hints). :func:`parse_memory_output` is forgiving: an
answer without an ``<observations>`` section is taken whole as the observations, and empty
hint sections count as absent.
"""

from __future__ import annotations

from collections.abc import Sequence

from lash.types import Record

__all__ = [
    "CONTEXT_PREAMBLE",
    "CONTINUATION_HINT",
    "MemoryOutput",
    "build_observer_prompt",
    "build_reflector_prompt",
    "capture_section",
    "observer_system_prompt",
    "parse_memory_output",
    "reflector_system_prompt",
    "truncate_observation_tail",
]


class MemoryOutput(Record, frozen=True, kw_only=True):
    """One worker answer, split into its sections (all trimmed)."""

    observations: str = ""
    current_task: str | None = None
    suggested_response: str | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing worth recording."""
        return (
            not self.observations.strip()
            and self.current_task is None
            and self.suggested_response is None
        )


CONTEXT_PREAMBLE = """\
The next message holds your observation log: what you noted about earlier parts of this \
conversation that no longer appear in full below.

- Use the concrete details in it (names, values, paths, decisions, preferences); answer from \
them rather than generically.
- When two observations disagree, the later one is current: entries carry dates and times.
- A plan the user announced for a time that has now passed is probably done unless the log \
says otherwise.
- The newest user message decides what to do next; older context adds constraints.
- A message wrapped in <system-reminder> tags is internal guidance for you, not something the \
user wrote; follow it without mentioning it."""

CONTINUATION_HINT = (
    "Pick up from the newest user message. What came before is background; if the log carries "
    "a suggested response, let it guide your next reply."
)

_OBSERVER_INSTRUCTIONS = """\
You keep the observation log of an AI assistant. The assistant will lose the raw messages you \
are shown; your observations are what it will remember of them.

Record:
- facts the user states about themselves, their work and their preferences ("User said ..."), \
kept apart from questions and requests ("User asked ...");
- changes of state as changes ("moved from A to B", "now uses X instead of Y");
- what the assistant did and found: tools it called and why, results, exact values, file \
paths, identifiers, counts, URLs and short code that may be needed again;
- goals, open questions, constraints and next steps.

Each entry starts with a priority marker: 🔴 important (user facts, goals, open work), \
🟡 useful (project details, tool results), 🟢 minor; mark finished work with ✅. Group entries \
under a date line and give each a 24-hour time; when the user refers to another day ("next \
Friday"), add the resolved date at the end in parentheses. Indent a sequence of related actions \
under one parent entry. Quote unusual wording verbatim. Be terse; never repeat something the \
log already says."""

_OUTPUT_FORMAT = """\
Answer with exactly these sections:

<observations>
Date: <day>
* 🔴 (HH:MM) <entry>
  * <detail>
</observations>

<current-task>
The task(s) in progress: the main one first; say when something waits for the user.
</current-task>

<suggested-response>
A short hint for the assistant's next message.
</suggested-response>"""

_REFLECTOR_INSTRUCTIONS = """\
You condense the observation log of an AI assistant. The log you write replaces the old one \
completely: whatever you leave out is forgotten.

Reorganise the entries, merge duplicates and related items, and draw out what they add up to. \
Keep dates and times, priority markers and ✅ outcomes. Compress old material harder than \
recent material. What the user stated about themselves outranks what they only asked about. \
If the newest user message asks for something, make that the main current task, and if the \
assistant owes the user an answer, say so in the suggested response.

The observer that wrote the log followed these rules:"""


def observer_system_prompt() -> str:
    """The observer's system prompt."""
    return f"{_OBSERVER_INSTRUCTIONS}\n\n{_OUTPUT_FORMAT}\n\nReply with the sections only."


def reflector_system_prompt() -> str:
    """The reflector's system prompt (it embeds the observer's rules)."""
    rules = observer_system_prompt()
    return f"{_REFLECTOR_INSTRUCTIONS}\n\n<observer-rules>\n{rules}\n</observer-rules>\n\n" + (
        f"{_OUTPUT_FORMAT}\n\nReply with the sections only."
    )


def truncate_observation_tail(observations: str, budget_tokens: int) -> str:
    """The newest ``budget_tokens`` (~4 characters each) of the log, marked when cut."""
    if budget_tokens <= 0:
        return ""
    budget = budget_tokens * 4
    if len(observations) <= budget:
        return observations
    return "…\n" + observations[len(observations) - budget :]


def build_observer_prompt(
    rendered_messages: Sequence[str],
    *,
    existing_observations: str | None = None,
    current_task: str | None = None,
    suggested_response: str | None = None,
) -> str:
    """The observer's request: the new messages, the log so far and the current hints."""
    sections = ["## Messages to observe\n\n" + "\n\n".join(rendered_messages)]
    if existing_observations and existing_observations.strip():
        sections.append(
            "## Log so far (newest part)\n\n"
            + existing_observations.strip()
            + "\n\nDo not repeat these; what you write is appended to them."
        )
    hints = []
    if current_task and current_task.strip():
        hints.append(f"- current task so far: {current_task.strip()}")
    if suggested_response and suggested_response.strip():
        hints.append(f"- suggested response so far: {suggested_response.strip()}")
    if hints:
        sections.append("## Continuity hints\n\n" + "\n".join(hints))
    sections.append("## Task\n\nWrite observations for the new messages above only.")
    return "\n\n---\n\n".join(sections) + "\n"


def build_reflector_prompt(observations: str) -> str:
    """The reflector's request."""
    return (
        "## Log to condense\n\n"
        + observations.strip()
        + "\n\n## Task\n\nRewrite the log shorter, keeping the user's facts, open tasks and "
        "whatever the assistant needs to carry on."
    )


def capture_section(text: str, tag: str) -> str | None:
    """The trimmed body of the first ``<tag>...</tag>`` in ``text``, if any."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    if end < 0:
        return None
    return text[start:end].strip()


def parse_memory_output(text: str) -> MemoryOutput:
    """Split a worker answer into its sections."""
    observations = capture_section(text, "observations")
    if observations is None:
        observations = text.strip()
    task = capture_section(text, "current-task") or None
    suggestion = capture_section(text, "suggested-response") or None
    return MemoryOutput(observations=observations, current_task=task, suggested_response=suggestion)
