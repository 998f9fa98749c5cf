"""The ``lash`` command line: print mode, chat, sessions, trace viewer and the offline demo."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from lash.cli.config import Settings, resolve
from lash.cli.errors import CliError
from lash.errors import EmbedError, LashRuntimeError, StoreError

__all__ = ["app"]

app = typer.Typer(
    name="lash",
    help="lash: a durable runtime for LLM agents. With no command, starts an interactive chat.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sessions_app = typer.Typer(help="List, show and delete stored sessions.", add_completion=False)
trace_app = typer.Typer(help="Work with JSONL trace files.", add_completion=False)
app.add_typer(sessions_app, name="sessions")
app.add_typer(trace_app, name="trace")

ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        help="openai, anthropic, google, openrouter, openai-compatible, or a configured name.",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model id.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Provider base URL.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="Provider API key.")]
ResumeOpt = Annotated[str | None, typer.Option("--resume", help="Continue this session id.")]
TraceOpt = Annotated[
    Path | None, typer.Option("--trace", help="Append JSONL trace records to this file.")
]
CwdOpt = Annotated[
    Path | None, typer.Option("--cwd", help="Workspace root for the file and shell tools.")
]


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine; runtime and store errors become one clear line."""
    try:
        return asyncio.run(coro)
    except (LashRuntimeError, EmbedError) as err:
        raise CliError(str(err)) from None
    except StoreError as err:
        raise CliError(f"store error: {err}") from None


def _settings(
    provider: str | None, model: str | None, base_url: str | None, api_key: str | None
) -> Settings:
    return resolve(provider=provider, model=model, base_url=base_url, api_key=api_key)


def _root(cwd: Path | None) -> Path:
    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        raise CliError(f"workspace {root} is not a directory")
    return root


def _chat(
    provider: str | None,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    resume: str | None,
    trace: Path | None,
    cwd: Path | None,
) -> None:
    from lash.cli.chat import run_chat

    settings = _settings(provider, model, base_url, api_key)
    code = _run(run_chat(settings, root=_root(cwd), resume=resume, trace=trace))
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    print_prompt: Annotated[
        str | None,
        typer.Option("-p", "--print", help="Run one autonomous turn on this prompt and exit."),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="Output of --print: text (default) or json.")
    ] = "text",
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    resume: ResumeOpt = None,
    trace: TraceOpt = None,
    cwd: CwdOpt = None,
) -> None:
    """lash: a durable runtime for LLM agents. With no command, starts an interactive chat."""
    if ctx.invoked_subcommand is not None:
        if print_prompt is not None:
            raise CliError("-p/--print runs on its own; do not combine it with a command")
        return
    if mode not in ("text", "json"):
        raise CliError(f"unknown --mode {mode!r}; expected text or json")
    if print_prompt is None:
        if mode == "json":
            raise CliError("--mode json needs --print")
        _chat(provider, model, base_url, api_key, resume, trace, cwd)
        return
    from lash.cli.printmode import run_print

    settings = _settings(provider, model, base_url, api_key)
    json_mode: Literal["text", "json"] = "json" if mode == "json" else "text"
    code = _run(
        run_print(
            settings,
            print_prompt,
            json_mode=json_mode == "json",
            root=_root(cwd),
            resume=resume,
            trace=trace,
        )
    )
    raise typer.Exit(code)


@app.command()
def chat(
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    resume: ResumeOpt = None,
    trace: TraceOpt = None,
    cwd: CwdOpt = None,
) -> None:
    """Interactive terminal chat on the embedded SQLite store."""
    _chat(provider, model, base_url, api_key, resume, trace, cwd)


@sessions_app.callback(invoke_without_command=True)
def sessions(ctx: typer.Context) -> None:
    """List stored sessions (newest first)."""
    if ctx.invoked_subcommand is None:
        from lash.cli.sessions import list_sessions

        raise typer.Exit(_run(list_sessions(Console(highlight=False))))


@sessions_app.command("list")
def sessions_list() -> None:
    """List stored sessions (newest first)."""
    from lash.cli.sessions import list_sessions

    raise typer.Exit(_run(list_sessions(Console(highlight=False))))


@sessions_app.command("show")
def sessions_show(session_id: Annotated[str, typer.Argument(help="Session id.")]) -> None:
    """Print a session's committed transcript and token usage."""
    from lash.cli.sessions import show_session

    raise typer.Exit(_run(show_session(Console(highlight=False), session_id)))


@sessions_app.command("delete")
def sessions_delete(session_id: Annotated[str, typer.Argument(help="Session id.")]) -> None:
    """Delete a session and everything stored for it."""
    from lash.cli.sessions import delete_session

    raise typer.Exit(_run(delete_session(Console(highlight=False), session_id)))


@trace_app.command("view")
def trace_view(
    file: Annotated[Path, typer.Argument(help="A JSONL trace file.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output HTML (default: beside FILE).")
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
) -> None:
    """Render a trace as one self-contained HTML file."""
    from lash.trace.viewer import TraceFileError, write_html

    try:
        target = write_html(file, out, title=title)
    except TraceFileError as err:
        raise CliError(str(err)) from None
    typer.echo(f"wrote {target}")


@app.command()
def demo() -> None:
    """Run the offline durability demo (loopback model server, SIGKILLed worker, takeover)."""
    from lash.cli.demo import run

    raise typer.Exit(run())


def main() -> None:
    """The ``lash`` console script."""
    try:
        app(prog_name="lash")
    except CliError as err:
        err.show()
        sys.exit(err.exit_code)
