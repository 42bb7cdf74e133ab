"""Several Docker engines for one run (``--isolate-engines``): which one starts the next container.

Teams that outgrow one machine already run Docker engines elsewhere, reached
as ``DOCKER_HOST`` reaches one: ``unix://``, ``tcp://`` (TLS from the usual
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) or ``ssh://`` through the system's
``ssh`` program, so the user's agent, keys and known_hosts apply.

The scheduler places each new container on the engine with the lowest load:
(our running containers there + 1) / its CPUs. "Our running containers" is
what the engine itself lists under our label, so every broker and every
xdist worker sharing the pool sees the others' targets without talking to
them. Ties go to the engine with more CPUs, then to the one this broker used
least, then to the order given, which xdist worker N starts at its Nth engine
(workers that start at once all see an empty pool). A container never waits for a free CPU: a
long-lived target counts as running while it idles between tests, so
waiting for the count to fall could wait for the end of another run.

An engine that does not answer at the start is left out and named in the
header; one lost mid-run (``lose``) takes no new container. Neither is an
error of the run while another engine remains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_isolate.container.engine import (
    Engine,
    EngineUnavailableError,
    connect_engine,
    parse_engine_url,
)
from pytest_isolate.container.reaping import LABEL_RUN, reap_leftovers

#: Seconds an engine of the pool has to answer at the start, and when asked whether it is lost.
PROBE_TIMEOUT = 15.0


@dataclass
class PoolMember:
    """One engine of the pool, as this broker knows it."""

    url: str
    engine: Engine | None = None
    cpus: int = 1
    #: Why it was left out at the start (it did not answer), or None.
    left_out: str | None = None
    #: Why it was dropped during the run (it stopped answering), or None.
    lost: str | None = None
    #: Containers this broker started there.
    started: int = 0

    @property
    def usable(self) -> bool:
        return self.engine is not None and self.left_out is None and self.lost is None


def split_engine_urls(value: str | Sequence[str] | None) -> list[str]:
    """``--isolate-engines`` as a list of URLs: comma- or line-separated, each checked."""
    if value is None:
        return []
    parts = value.replace("\n", ",").split(",") if isinstance(value, str) else list(value)
    urls = [part.strip() for part in parts if part.strip()]
    for url in urls:
        parse_engine_url(url)  # ValueError names the URL and the schemes that work
    if len(set(urls)) != len(urls):
        raise ValueError(f"pytest-isolate: --isolate-engines names an engine twice: {urls}")
    return urls


class EnginePool:
    """The engines of ``--isolate-engines``, connected once, with their load and their losses."""

    def __init__(self, urls: Sequence[str], *, first: int = 0) -> None:
        self.members = [PoolMember(url) for url in urls]
        #: Where this broker's last tie-break starts: xdist worker N starts at engine N, so
        #: workers starting at once (each seeing no container anywhere) spread out.
        self._first = first
        self._connected = False
        #: Tests run a second time on another engine after theirs was lost.
        self.retried: list[str] = []

    def connect(self) -> None:
        """Open every engine once: a silent one is left out, with why and its fix."""
        if self._connected:
            return
        self._connected = True
        for member in self.members:
            try:
                member.engine = connect_engine(member.url, timeout=PROBE_TIMEOUT)
                member.cpus = max(1, int(member.engine.api.info().get("NCPU") or 1))
                reap_leftovers(member.engine)  # what a killed run left on it
            except Exception as exc:  # any failure to reach it is a reason to leave it out
                member.left_out = f"{_reason(exc)}, or drop it from --isolate-engines"
                if member.engine is not None:
                    with contextlib.suppress(Exception):
                        member.engine.close()
                    member.engine = None

    def usable(self) -> list[PoolMember]:
        self.connect()
        return [member for member in self.members if member.usable]

    def choose(self) -> PoolMember:
        """The engine for the next container, or ``EngineUnavailableError`` if none is left."""
        self.connect()
        turns = len(self.members)
        candidates = [
            ((index - self._first) % turns, member)
            for index, member in enumerate(self.members)
            if member.usable
        ]
        if not candidates:
            raise EngineUnavailableError(self.none_left())

        def load(candidate: tuple[int, PoolMember]) -> tuple[float, int, int, int]:
            turn, member = candidate
            busy = (self._running(member) + 1) / member.cpus
            return (busy, -member.cpus, member.started, turn)

        return min(candidates, key=load)[1]

    def _running(self, member: PoolMember) -> int:
        """Our containers running on the member's engine, from every broker (0 if it fails)."""
        assert member.engine is not None
        try:
            return len(member.engine.api.containers(filters={"label": LABEL_RUN}))
        except Exception:  # it will be judged when a container is started there
            return 0

    def still_answers(self, member: PoolMember) -> str | None:
        """None if the member's engine answers a fresh connection, else why not."""
        try:
            with connect_engine(member.url, timeout=PROBE_TIMEOUT):
                return None
        except Exception as exc:
            return _reason(exc)

    def lose(self, member: PoolMember, reason: str) -> None:
        """Take no new container on ``member`` from now on."""
        if member.lost is None:
            member.lost = reason

    def none_left(self) -> str:
        words = "; ".join(
            f"{member.url}: {member.left_out or member.lost}" for member in self.members
        )
        return f"pytest-isolate: no engine of --isolate-engines can take a container ({words})"

    def header_lines(self) -> list[str]:
        """For the run's header: each engine, its CPUs, or why it is left out."""
        self.connect()
        lines = []
        for member in self.members:
            if member.left_out is not None:
                lines.append(f"  {member.url}: left out, {member.left_out}")
            else:
                lines.append(f"  {member.url}: {member.cpus} CPUs")
        usable = sum(1 for member in self.members if member.usable)
        return [f"pytest-isolate: engine pool, {usable} of {len(self.members)} engines:", *lines]

    def summary_lines(self) -> list[str]:
        """For the run's end: containers started per engine, and the engines lost."""
        if not self._connected and not any(m.started or m.lost for m in self.members):
            return []  # an xdist controller under -q: it never opened the pool, nor did workers
        lines = []
        for member in self.members:
            if member.left_out is not None:
                continue
            plural = "" if member.started == 1 else "s"
            text = f"{member.url}: {member.started} container{plural} started"
            if member.lost is not None:
                text += f", lost during the run ({member.lost})"
            lines.append(text)
        if self.retried:
            lines.append(
                f"ran again on another engine after theirs was lost: {', '.join(self.retried)}"
            )
        return lines

    def counts(self) -> dict[str, object]:
        """What this broker did with the pool, for the xdist controller's summary."""
        return {
            "started": {member.url: member.started for member in self.members},
            "lost": {member.url: member.lost for member in self.members if member.lost},
            "retried": list(self.retried),
        }

    def add_counts(self, counts: object) -> None:
        """Add a worker's ``counts``: its containers, its lost engines, its retried tests."""
        if not isinstance(counts, dict):
            return
        known = {member.url: member for member in self.members}
        for url, started in dict(counts.get("started") or {}).items():
            if url in known and isinstance(started, int):
                known[url].started += started
        for url, why in dict(counts.get("lost") or {}).items():
            if url in known and isinstance(why, str):
                self.lose(known[url], why)
        self.retried += [str(nodeid) for nodeid in counts.get("retried") or ()]

    def close(self) -> None:
        for member in self.members:
            if member.engine is not None:
                with contextlib.suppress(Exception):
                    member.engine.close()
                member.engine = None
        self._connected = False


def _reason(exc: BaseException) -> str:
    """Why an engine does not answer, and its fix, without the words that name it again."""
    if isinstance(exc, EngineUnavailableError):
        return exc.detail
    text = str(exc).strip() or type(exc).__name__
    return f"does not answer ({text.splitlines()[0][:300]})"
