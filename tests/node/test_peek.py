"""Peeks on both runtimes (in order with the work, a bail leaves the runtime be, nothing answers when no
runtime runs, and a protocol-2 follower never starts a worker for a peek), the reference ship's
remote-scry namespace, and the master's handling of scry requests (seguro.node.scry)."""

from __future__ import annotations

import os
import queue
import signal
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import pytest

from seguro.core import messages as m
from seguro.node.runtime import Job, Peek, RuntimeWorker
from seguro.node.scry import HOLD_S, ScryAnswers
from seguro.urbit import fine, mesa, mesa_answer
from seguro.urbit.ames import datagram_event
from seguro.urbit.ames_filter import Verdict, classify
from seguro.urbit.noun import cord, from_list
from seguro.urbit.serf import PeekBail, SerfError
from seguro.urbit.ship import scry
from seguro.urbit.ship.kernel import Kernel
from tests.node.test_mars_runtime import boot_log
from tests.node.test_mars_runtime import runtime as mars_runtime
from tests.node.test_runtime import WALL_S, make_log, next_event
from tests.urbit.test_ames_filter import ames_packet, mesa_name, mesa_packet, wail_body

ZOD, THEM = 0, 0x0200
WAIT_S = 30.0


def request(path: bytes, fra: int = 1) -> Verdict:
    verdict = classify(ames_packet(THEM, ZOD, wail_body(fra, path), sim=1), ZOD)
    assert verdict.action == "scry"
    return verdict


def expected(verdict: Verdict) -> bytes:
    """The answer the reference ship's Arvo gives, built as vere builds it."""
    purr = fine.answer(verdict.request, scry.peek_fine(Kernel(who="~zod"), verdict.sam))  # type: ignore[arg-type]
    assert purr is not None
    return purr


def test_the_reference_ships_namespace_makes_real_answers() -> None:
    verdict = request(b"/c/x/1/kids/sys/kelvin")
    unit = scry.peek_fine(Kernel(who="~zod"), verdict.sam)
    meow = fine.fragment_of(verdict.request, unit)  # type: ignore[arg-type]
    assert meow is not None
    sig, num, dat = fine.sift_meow(meow)  # type: ignore[misc]
    assert (len(sig), num) == (64, 1)
    key = [cord(s) for s in ("c", "x", "1", "kids", "sys", "kelvin")]
    assert dat == scry.message(Kernel(who="~zod"), key)
    assert fine.answer(verdict.request, unit) == expected(verdict)  # type: ignore[arg-type]
    assert scry.peek_fine(Kernel(who="~nec"), verdict.sam) != unit  # the ship's own
    assert scry.peek_fine(Kernel(who="~zod"), request(b"/none/x").sam) == 0
    second = request(b"/c", 2)  # the page from fragment 1 holds one fragment: there is no second
    assert fine.answer(second.request, scry.peek_fine(Kernel(who="~zod"), second.sam)) is None  # type: ignore[arg-type]
    assert scry.peek_fine(Kernel(), (0, from_list([cord("eve")]))) is None  # not a fine peek
    mes = bytes(range(256)) * 10  # 2560 bytes: three fragments
    parts = [fine.sift_meow(meow)[1:] for meow in scry.meows(mes, 2, 5, [])]  # type: ignore[index]
    assert parts == [(3, mes[1024:2048]), (3, mes[2048:])]


def test_peeks_on_a_protocol_1_runtime(tmp_path: Path) -> None:
    log, events = make_log(tmp_path, 5), queue.Queue()  # type: ignore[var-annotated]
    worker = RuntimeWorker(log, events.put, pier=tmp_path / "pier")
    worker.start()
    try:
        assert next_event(events, m.RuntimeReady).eve == 8  # type: ignore[attr-defined]
        verdict = request(b"/c/x/1/kids")
        worker.run(Job(datagram_event(WALL_S + 100, "127.0.0.1", 4000, b"hello"), 10))
        first = worker.peek(verdict.sam)  # after the job: it sees event 9
        assert fine.answer(verdict.request, first.result(WAIT_S)) == expected(verdict)  # type: ignore[arg-type]
        assert first.eve == 9 and next_event(events, m.WorkDone).eve == 9  # type: ignore[attr-defined]
        assert worker.peek((0, from_list([cord("eve")]))).result(WAIT_S) == (0, (cord("noun"), 9))
        assert worker.peek(request(b"/none").sam).result(WAIT_S) == 0  # nothing bound there
        with pytest.raises(PeekBail):
            worker.peek(request(b"/crash").sam).result(WAIT_S)
        assert worker.peek(verdict.sam).result(WAIT_S) == first.result()  # a bail harms nothing
        assert events.empty()
        os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(SerfError):  # the peek that finds the runtime dead fails it
            worker.peek(verdict.sam).result(WAIT_S)
        assert isinstance(next_event_any(events), m.RuntimeFailed)
        assert worker.peek(verdict.sam).result(WAIT_S) is None  # no runtime until a restart
    finally:
        worker.stop()
        log.close()
    assert worker.peek(verdict.sam).result(0) is None  # stopped


def next_event_any(events: queue.Queue[m.Event]) -> m.Event:
    return events.get(timeout=WAIT_S)


def test_peeks_on_a_protocol_2_runtime_never_start_a_worker(tmp_path: Path) -> None:
    log, events = boot_log(tmp_path / "data"), queue.Queue()  # type: ignore[var-annotated]
    worker = mars_runtime(log, tmp_path / "data", events)
    verdict = request(b"/g/x/4/app/path")
    try:
        assert worker.peek(verdict.sam).result(WAIT_S) is None and worker.pid is None  # none running
        worker.run(Job(datagram_event(WALL_S, "127.0.0.1", 4000, b"hello"), 10))  # a master's first job
        peeked = worker.peek(verdict.sam)
        assert fine.answer(verdict.request, peeked.result(WAIT_S)) == expected(verdict)  # type: ignore[arg-type]
        assert peeked.eve == 4 and next_event(events, m.WorkDone).eve == 4  # type: ignore[attr-defined]
        with pytest.raises(PeekBail):
            worker.peek(request(b"/crash").sam).result(WAIT_S)
        assert worker.peek(request(b"/none").sam).result(WAIT_S) == 0
        log.append(4, [worker._pier_log().get(4)])  # type: ignore[list-item]  # the core committed it
        worker.apply_to(4)  # as a follower: the worker stops, and no peek starts it again
        next_event(events, m.Applied)
        assert worker.peek(verdict.sam).result(WAIT_S) is None and worker.pid is None
    finally:
        worker.stop()
        log.close()


# ---- the master's side (seguro.node.scry), with a runtime that answers what the test says


class FakeRuntime:
    def __init__(self) -> None:
        self.asked: list[Peek] = []

    def peek(self, sam: object) -> Peek:
        self.asked.append(Peek())
        return self.asked[-1]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now_s(self) -> float:
        return self.t

    def wall_s(self) -> float:
        return self.t


def answer_with(future: Future, result: object, eve: int = 9) -> None:
    future.eve = eve  # type: ignore[attr-defined]
    future.set_exception(result) if isinstance(result, Exception) else future.set_result(result)


def test_the_master_answers_once_committed_through_the_gate_and_counts_the_rest() -> None:
    runtime, clock, epoch = FakeRuntime(), Clock(), [3]
    answers = ScryAnswers(runtime, lambda: epoch[0], clock)
    sent: list[tuple[bytes, tuple[str, int], float]] = []
    open_gate = [True]

    def gate(payload: bytes, lane: tuple[str, int], deadline_s: float) -> bool:
        if open_gate[0]:
            sent.append((payload, lane, deadline_s))
        return open_gate[0]

    verdict, lane = request(b"/c/x/1/kids"), ("10.0.0.9", 4000)
    unit = scry.peek_fine(Kernel(who="~zod"), verdict.sam)
    answers.hear(verdict, lane)
    answer_with(runtime.asked[-1], unit, eve=9)
    answers.flush(8, 50.0, gate)  # event 9 is run-ahead: held
    assert sent == []
    answers.flush(9, 50.0, gate)
    assert sent == [(expected(verdict), lane, 50.0)]
    second = request(b"/c", 2)  # a fragment the page does not hold
    beyond = scry.peek_fine(Kernel(who="~zod"), second.sam)
    for asked, result in [(verdict, 0), (verdict, None), (verdict, PeekBail(0)), (verdict, SerfError("died")),
                          (second, beyond)]:  # fmt: skip
        answers.hear(asked, lane)
        answer_with(runtime.asked[-1], result)
    answers.hear(Verdict("scry", form="mesa", sam=0, request=object()), lane)  # neither fine nor mesa
    answers.hear(verdict, lane)
    open_gate[0] = False
    answer_with(runtime.asked[-1], unit)
    answers.flush(9, 50.0, gate)  # past the deadline: the gate refuses
    answers.hear(verdict, lane)
    answer_with(runtime.asked[-1], unit, eve=10)
    answers.flush(9, 50.0, gate)
    clock.t += HOLD_S
    answers.flush(9, 50.0, gate)  # event 10 never committed
    answers.hear(verdict, lane)
    answer_with(runtime.asked[-1], unit)
    epoch[0] = 0  # fenced before the answer could leave
    answers.flush(9, 50.0, gate)
    answers.hear(verdict, lane)  # not master: no peek at all
    assert len(runtime.asked) == 9 and len(sent) == 1
    assert answers.counts() == {
        "answered": 1, "empty": 1, "no runtime": 1, "bail": 1, "runtime failed": 1, "no fragment": 1,
        "unknown request": 1, "fenced": 1, "uncommitted": 1, "not master": 2,
    }  # fmt: skip


def test_relayed_requests_and_floods_are_not_peeked() -> None:
    runtime = FakeRuntime()
    answers = ScryAnswers(runtime, lambda: 1, Clock())
    direct = request(b"/c/x/1/kids")
    wail = direct.request
    assert isinstance(wail, fine.Wail)
    relayed = replace(direct, request=replace(wail, head=replace(wail.head, rel=True)))
    answers.hear(relayed, ("10.0.0.9", 4000))
    for _ in range(300):
        answers.hear(direct, ("10.0.0.9", 4000))
    assert len(runtime.asked) == 256
    assert answers.counts() == {"answered": 0, "relayed": 1, "busy": 44}
    unit = scry.peek_fine(Kernel(who="~zod"), direct.sam)
    for asked in runtime.asked:  # every peek answered and sent: the room comes back
        answer_with(asked, unit)
    answers.flush(9, 50.0, lambda *_: True)
    answers.hear(direct, ("10.0.0.9", 4000))
    assert len(runtime.asked) == 257 and answers.counts()["answered"] == 256


def test_only_the_master_answers_a_stun_request_and_through_the_gate() -> None:
    """vere answers a STUN binding request with the requester's address (_stun_on_request); every replica
    hears it, so only the master answers, and never past its deadline."""
    from seguro.urbit.ames_filter import classify, is_stun_response
    from tests.urbit.test_ames_filter import OUR, stun_request

    epoch, sent = [0], []
    answers = ScryAnswers(FakeRuntime(), lambda: epoch[0], Clock())
    tid = bytes(range(12))
    verdict, lane = classify(stun_request(tid), OUR), ("10.0.0.9", 4000)
    answers.hear(verdict, lane)  # a follower
    epoch[0] = 2
    answers.hear(verdict, lane)
    answers.flush(0, 50.0, lambda payload, to, _: sent.append((payload, to)) or True)
    assert len(sent) == 1 and sent[0][1] == lane and is_stun_response(sent[0][0], tid)
    assert answers.counts() == {"answered": 0, "stun: not master": 1, "stun: answered": 1}


def mesa_request(path: bytes, fra: int = 0) -> Verdict:
    verdict = classify(mesa_packet(mesa.PEEK, mesa_name(ZOD, path, fra)), ZOD)
    assert verdict.action == "scry" and isinstance(verdict.request, mesa.Pact)
    return verdict


def test_the_master_answers_a_mesa_peek_like_a_fine_one() -> None:
    """A mesa peek is peeked, held until what the runtime saw is committed, sent through the gate to the
    address it came from (vere's _mesa_hear_peek answers lan_u), and counted apart: "mesa ..."."""
    runtime, clock, epoch = FakeRuntime(), Clock(), [3]
    answers = ScryAnswers(runtime, lambda: epoch[0], clock)
    sent: list[tuple[bytes, tuple[str, int]]] = []

    def gate(payload: bytes, lane: tuple[str, int], deadline_s: float) -> bool:
        sent.append((payload, lane))
        return True

    kernel, lane = Kernel(who="~zod"), ("10.0.0.9", 4000)
    verdict = mesa_request(b"big/3.000", 1)
    unit = scry.peek_mesa(kernel, verdict.sam)
    want = mesa_answer.answer(verdict.request, unit)  # type: ignore[arg-type]
    answers.hear(verdict, lane)
    answer_with(runtime.asked[-1], unit, eve=9)
    answers.flush(8, 50.0, gate)
    assert sent == []  # event 9 is run-ahead: held
    answers.flush(9, 50.0, gate)
    assert sent == [(want, lane)]
    page = mesa.sift_pact(want)
    assert (page.typ, page.name.fra, page.tob, page.auth[0]) == (mesa.PAGE, 1, 3000, mesa.AUTH_NONE)
    beyond = mesa_request(b"big/3.000", 3)  # three leaves: 0, 1, 2
    for asked, result in [(verdict, 0), (verdict, PeekBail(0)), (beyond, scry.peek_mesa(kernel, beyond.sam)),
                          (verdict, (0, (cord("noun"), 5)))]:  # fmt: skip
        answers.hear(asked, lane)
        answer_with(runtime.asked[-1], result)
    epoch[0] = 0
    answers.hear(verdict, lane)  # a follower: no peek
    assert len(runtime.asked) == 5 and len(sent) == 1
    assert answers.counts() == {
        "answered": 0, "mesa answered": 1, "mesa empty": 1, "mesa bail": 1, "mesa no fragment": 1,
        "mesa misshapen": 1, "mesa not master": 1,
    }  # fmt: skip
