"""pytest plugin: corpus files as regression tests.

Installed with wsreplay through the ``pytest11`` entry point and off until the
``wsreplay_paths`` ini option names folders (or files): every ``.wsr`` file there becomes
one test per case of its sidecar (``NAME.wsr.toml`` or the folder's ``wsreplay.toml``).
A failure shows the first divergence in a timeline diff and the ``wsreplay run`` command
that reproduces it; the transcript is saved under ``.pytest_cache/d/wsreplay/``.

Hand-written tests use the ``wsreplay`` fixture (`Replayer`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._sidecar import Case, Sidecar, SidecarError, read_sidecar, sidecar_epoch

if TYPE_CHECKING:
    from ._facade import Result

FOLDER_SIDECAR = "wsreplay.toml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("wsreplay_paths", type="paths", default=[],
                  help="folders or .wsr files that run as wsreplay regression tests")
    group = parser.getgroup("wsreplay", "wsreplay corpus tests")
    group.addoption("--wsreplay-target", metavar="TARGET",
                    help="replay every corpus test against TARGET (ws://, wss:// or asgi:...)")
    group.addoption("--wsreplay-warp", metavar="WARP",
                    help="run every corpus file once under WARP instead of its sidecar's cases")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wsreplay_race(name): the test pins a timing race (e.g. accept-vs-send)")
    roots = _roots(config)
    if roots and config.args_source is not pytest.Config.ArgsSource.ARGS:
        # Corpus folders usually sit outside `testpaths`; walk them too unless the user
        # named what to run on the command line.
        config.args.extend(str(root) for root in roots if str(root) not in config.args)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".wsr" and _wanted(file_path, parent.config):
        return CorpusFile.from_parent(parent, path=file_path)
    return None


def _roots(config: pytest.Config) -> list[Path]:
    return [Path(p).resolve() for p in config.getini("wsreplay_paths")]


def _wanted(path: Path, config: pytest.Config) -> bool:
    path = path.resolve()
    return any(path == root or root in path.parents for root in _roots(config))


class CorpusFile(pytest.File):
    """A ``.wsr`` file: one `CorpusCase` per case of its sidecar."""

    def collect(self) -> Iterator[CorpusCase]:
        try:
            sidecar = load_sidecar(self.path).with_overrides(
                target=self.config.getoption("wsreplay_target"),
                warp=self.config.getoption("wsreplay_warp"))
        except (SidecarError, OSError) as bad:
            raise self.CollectError(str(bad)) from None
        if not all(case.target_in(sidecar) for case in sidecar.cases):
            raise self.CollectError(
                f"{self.path}: target: no target to replay against; set `target` in "
                f"{self.path.name}.toml or {FOLDER_SIDECAR}, or pass --wsreplay-target")
        for case in sidecar.cases:
            problem = _check_warp(case.warp)
            if problem:
                where = sidecar.sources[-1] if sidecar.sources else str(self.path)
                raise self.CollectError(f"{where}: warp {case.name!r}: {problem}")
            yield CorpusCase.from_parent(self, name=case.name, sidecar=sidecar, case=case)


def load_sidecar(corpus_file: Path) -> Sidecar:
    """The folder's sidecar, then the file's own on top; defaults when neither exists."""
    sidecar = Sidecar()
    folder = corpus_file.parent / FOLDER_SIDECAR
    own = corpus_file.with_name(corpus_file.name + ".toml")
    for path in (folder, own):
        if path.is_file():
            sidecar = read_sidecar(path, base=sidecar)
    return sidecar


def _check_warp(text: str) -> str | None:
    from ._engine.warp import Warp
    from ._errors import WarpError

    try:
        Warp.parse(text)
    except WarpError as bad:
        return str(bad)
    return None


class ReplayFailed(Exception):
    """The replay's verdict was not what the case expects; the text is the whole report."""


class RaceReproduced(ReplayFailed):
    """An xfail case failed with exactly the finding it expects."""


class CorpusCase(pytest.Item):
    """One corpus file replayed under one warp."""

    def __init__(self, *, sidecar: Sidecar, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sidecar, self.case = sidecar, case
        # pytest-trio's trio_mode inspects `item.obj` of every item; a plain function tells
        # it this is no coroutine test, so it leaves the item alone.
        self.obj = self.runtest
        self.add_marker(pytest.mark.wsreplay_race(case.name))
        if case.expect == "xfail":
            self.add_marker(pytest.mark.xfail(reason=case.reason or f"expects {case.finding}",
                                              raises=RaceReproduced, strict=True))

    def runtest(self) -> None:
        result = run_file(self.path, self.sidecar, self.case)
        self.transcript_path = self._save(result)
        self.user_properties.append(("wsreplay_transcript", str(self.transcript_path)))
        verdict = result.verdict
        if self.case.expect == "pass":
            if not verdict.passed:
                raise ReplayFailed(self._report(result))
            return
        if _has_finding(verdict, self.case.finding, self.case.match):
            raise RaceReproduced(self._report(result))
        if not verdict.passed:  # failed, but not the way this case expects
            raise ReplayFailed(f"expected finding {self.case.finding!r}"
                               f"{f' matching {self.case.match!r}' if self.case.match else ''}"
                               f", got another failure\n{self._report(result)}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, ReplayFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, Exception) and _is_input_error(excinfo.value):
            return f"{self.path}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Not "file::case": pytest rewrites dots to "::" in a domain that ends the node id.
        return self.path, None, f"{self.path.name} [{self.name}]"

    def _report(self, result: Result) -> str:
        from corpus import scrub

        from ._auth import ENV_SECRET
        from ._engine.diff import render_diff
        from ._engine.transcript import describe_ending

        events = {s.session: s.events for s in result.transcript.sessions}
        lines = [f"wsreplay: {self.path.name} [{self.case.name}] → {result.verdict.kind}"]
        for session in result.verdict.sessions:
            if not session.findings:
                continue
            ending = describe_ending(events.get(session.session, ()))
            lines.append(f"  session {session.session}: {session.kind}"
                         + (f" [{scrub(ending)}]" if ending else ""))
            lines += [f"    {finding.kind}: {finding.detail}" for finding in session.findings]
        diff = render_diff(result.schedule, result.transcript, result.verdict,
                           target=self.sidecar.target or None)
        lines += ["", scrub(diff), "",
                  "reproduce with:", "  " + self.command(),
                  *([f"  (the sidecar's jwt_secret is never printed: set {ENV_SECRET} to it "
                     "before pasting)"] if self.sidecar.jwt_secret is not None else []),
                  f"transcript: {self.transcript_path}"]
        return "\n".join(lines)

    def command(self) -> str:
        return reproduce_command(self.path, self.sidecar, self.case)

    def _save(self, result: Result) -> Path:
        name = f"{self.path.stem}.{_slug(self.case.name)}.transcript.json"
        path = _transcripts(self.config) / name
        document = transcript_json(result, path=self.path, sidecar=self.sidecar,
                                   case=self.case)
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        return path


_TRANSCRIPTS = pytest.StashKey[Path]()


def _transcripts(config: pytest.Config) -> Path:
    """Where transcripts go: ``.pytest_cache/d/wsreplay`` (the cache's public `mkdir`,
    rewritten by every run), or a fresh temporary folder when the cache plugin is off."""
    folder = config.stash.get(_TRANSCRIPTS, None)
    if folder is None:
        cache = getattr(config, "cache", None)
        if cache is not None:
            folder = cache.mkdir("wsreplay")
        else:
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="wsreplay-"))
        config.stash[_TRANSCRIPTS] = folder
    return folder


def transcript_json(result: Result, *, path: Path, sidecar: Sidecar,
                    case: Case) -> dict[str, Any]:
    """A case's replay as the JSON document `wsreplay run --json` prints (for CI
    artifacts)."""
    from corpus import scrub_value

    from ._document import RunReport, replay_document

    run = RunReport(os.path.relpath(path), result, reproduce_command(path, sidecar, case))
    return scrub_value(replay_document([run], target=case.target_in(sidecar) or "",
                                       options=sidecar.replay_options(case, os.environ)))


def reproduce_command(path: Path, sidecar: Sidecar, case: Case) -> str:
    """The `wsreplay run` command line that replays one case the same way."""
    from ._reproduce import reproduce_command as command
    from ._targets.open import TargetSpec

    target = TargetSpec(url=resolve_target(case.target_in(sidecar) or "?", sidecar))
    return command([os.path.relpath(path)], target, sidecar.replay_options(case, os.environ))


def _has_finding(verdict: Any, kind: str | None, match: str | None) -> bool:
    from ._engine.verdict import FindingKind, FindingSelector

    selector = FindingSelector(kind=FindingKind(kind) if kind else None, match=match)
    return not selector.any and selector.fails(verdict)


def _is_input_error(error: Exception) -> bool:
    from corpus import CorpusError

    from ._errors import ReplayError

    return isinstance(error, CorpusError | ReplayError)


def _slug(text: str) -> str:
    from corpus import safe_name

    return safe_name(text, fallback="case", limit=60)


# -- running ---------------------------------------------------------------------------


def run_file(path: Path, sidecar: Sidecar, case: Case) -> Any:
    """Replay one corpus file under one case (synchronously, on the target's own loop)."""
    from corpus import read_recording

    from ._facade import replay_recording
    from ._targets.open import open_target

    recording = read_recording(path)
    spec = resolve_target(case.target_in(sidecar) or "", sidecar)
    with target_environment(spec, sidecar):
        target = open_target(spec)
        return replay_recording(recording, target, sidecar.replay_options(case, os.environ))


def resolve_target(spec: str, sidecar: Sidecar) -> str:
    """An ``asgi:`` file path relative to the folder of the sidecar that names it (the
    file's own sidecar first, then the folder's); else as given, from the working
    directory. Module paths (``asgi:pkg.app:app``) are imported as they are."""
    if not spec.startswith("asgi:"):
        return spec
    where, sep, attr = spec.removeprefix("asgi:").rpartition(":")
    if not sep or not (where.endswith(".py") or "/" in where or os.sep in where) \
            or Path(where).is_absolute():
        return spec
    for source in reversed(sidecar.sources):
        candidate = Path(source).parent / where
        if candidate.is_file():
            return f"asgi:{candidate}:{attr}"
    return spec


@contextlib.contextmanager
def target_environment(spec: str, sidecar: Sidecar) -> Iterator[None]:
    """The sidecar's ``env`` set while an in-process target is imported and run; every
    variable restored (or removed) after, whatever happens."""
    if not sidecar.env or not spec.startswith("asgi:"):
        yield
        return
    saved = {name: os.environ.get(name) for name, _ in sidecar.env}
    os.environ.update(dict(sidecar.env))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Replayer:
    """The ``wsreplay`` fixture: replay a corpus file from a hand-written test.

    A file replays as its sidecars say (folder ``wsreplay.toml``, then ``NAME.wsr.toml``:
    target, keys, ignore-paths...); keyword arguments override them one by one, with the
    sidecar field names (``target``, ``ignore_paths``, ``jwt_secret_env``, ``seed``...).
    """

    tmp_path: Path

    def run(self, file: str | os.PathLike[str], *, warp: str = "", **options: Any) -> Any:
        """Replay synchronously on the target's own loop (virtual clock for ``asgi:``)."""
        sidecar, case = self._plan(Path(file), warp, options)
        return run_file(Path(file), sidecar, case)

    async def replay(self, file: str | os.PathLike[str], *, warp: str = "",
                     **options: Any) -> Any:
        """Replay inside a running Trio test, on that test's clock."""
        from corpus import read_recording

        from ._facade import replay_recording_async
        from ._targets.open import open_target

        sidecar, case = self._plan(Path(file), warp, options)
        spec = resolve_target(sidecar.target or "", sidecar)
        with target_environment(spec, sidecar):
            # the running test's loop decides same-instant ordering: the seed is not used
            return await replay_recording_async(read_recording(file), open_target(spec),
                                                sidecar.replay_options(case, os.environ))

    @staticmethod
    def _plan(file: Path, warp: str, options: dict[str, Any]) -> tuple[Sidecar, Case]:
        if options.get("epoch") is not None:  # ISO 8601 or Unix seconds, as in a sidecar
            options = {**options, "epoch": sidecar_epoch("wsreplay fixture", options["epoch"])}
        sidecar = replace(load_sidecar(file), **options)
        if not sidecar.target:
            raise SidecarError(str(file), "target", "no target: pass target=... or set it "
                               f"in {file.name}.toml or {FOLDER_SIDECAR}")
        return sidecar, Case(warp=warp)


@pytest.fixture
def wsreplay(tmp_path: Path) -> Replayer:
    """Replay corpus files in your own tests: ``wsreplay.run(file, target=..., warp=...)``."""
    return Replayer(tmp_path)
