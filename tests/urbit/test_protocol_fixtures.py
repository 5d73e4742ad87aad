"""Every king <-> worker message of vere's two IPC protocols, written out by hand from vere's C source,
and checked against Seguro's codecs (builders, parsers, newt framing).

Protocol 1 is vere-v3.5 (king pkg/vere/lord.c, worker pkg/vere/serf.c, %slog/%flog in pkg/vere/main.c);
protocol 2 is vere-v4.5 (king pkg/vere/lord.c, worker pkg/vere/mars.c and main.c, pkg/noun/vortex.c).
Reading the C: u3nc(a, b) is [a b], u3nt(a, b, c) is [a b c], u3nq(a, b, c, d) is [a b c d]; u3_nul is
~ (0); c3y/%.y is 0 and c3n/%.n is 1; c3__foo is the cord %foo. Each fixture names the C function that
builds it (for the worker's answers) or that lord.c sends it from (for the king's requests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seguro.urbit import ames, newt
from seguro.urbit import mars_protocol as mars
from seguro.urbit.noun import Noun, cord, from_list, tape, to_list
from seguro.urbit.serf import Serf
from seguro.urbit.serf_protocol import (
    PeekBail,
    PlayBail,
    Ripe,
    SerfBail,
    SerfProtocolError,
    WorkBail,
    WorkDone,
    parse_live,
    parse_peek,
    parse_play,
    parse_ripe,
    parse_work,
    render_cord,
    render_tank,
)
from seguro.urbit.ship import kernel, worker

Parser = Callable[[Noun], object]


def n(*items: Noun) -> Noun:
    """`[a b c]`: right-nested cells, as in Hoon and u3nt/u3nq."""
    noun = items[-1]
    for item in reversed(items[:-1]):
        noun = (item, noun)
    return noun


def c(text: str) -> int:
    return cord(text)


YES, NO = 0, 1
WALL_S = 1_700_000_000.0
BOOT = kernel.boot_events("~zod", WALL_S)  # the reference ship's lifecycle sequence: 3 events
JOB = ames.datagram_event(WALL_S, "127.0.0.1", 4000, b"hello")  # [now ovum], a reference ship event
NOW, OVUM = JOB
EVE = len(BOOT) + 1  # JOB's event number after the boot
MUG = 0x2BAD_F00D  # u3r_mug is 31 bits
WHO = (1 << 127) | 0x1234  # a comet: who is u3i_chubs(2, who_d), 128 bits
TANG = from_list([n(c("leaf"), tape("bail!"))])
GOOF = n(c("exit"), TANG)  # noun/manage.c u3m_soft on a crash: [mote tang]
DUD = n(c("exit"), TANG)  # an event's crash
GON = n(c("meme"), 0)  # the crash of the %crud event made from it
EVIL = n(c("evil"), 0)  # u3v_poke's refusal of bad ciphertext: no %crud is tried
EFFECTS = from_list([n(n(0, c("newt"), 0), c("send"), c("lane"), c("blob"))])  # (list ovum)
UNIT = n(0, c("noun"), 42)  # what arvo's +peek produces: (unit (cask))
# lord.c u3_lord_peek, u3_pico_once: [gan [%.n %once car des pax]]; gan as in serf.c u3_serf_grab
SAM = n(n(0, 0), NO, c("once"), c("x"), c("base"), from_list([c("whey")]))
ARVO_WIRE = n(0, c("arvo"), 0)  # u3nt(u3_blip, c3__arvo, u3_nul)
# serf.c _serf_make_crud: u3nt(u3i_vint(now), wire, u3nt(%crud, dud, ovo)); u3i_vint is now + 1
CRUD_JOB_1 = n(NOW + 1, ARVO_WIRE, c("crud"), DUD, OVUM)
# serf.c/mars.c _{serf,mars}_quac: [name size (list quac)] (size u3i_word), as u3_{serf,mars}_grab lists them
QUACS = from_list([n(c("total marked"), 4096, 0), n(c("loom"), 1 << 31, from_list([n(c("arvo"), 64, 0)]))])
# serf.c u3_serf_writ / mars.c _mars_work %quic: u3nt([%open pen_d], [%idle dil_d], ~), chubs
QUIC = n(n(c("open"), 1 << 33), n(c("idle"), 4096), 0)
SLOG = n(c("slog"), 0, n(c("leaf"), tape("hi")))  # main.c _cw_{serf,io}_send_slog: [%slog pri tank]
FLOG = n(c("flog"), c("hi\n"))  # main.c _cw_{serf,io}_send_stdr: [%flog u3i_string(str_c)]

# ------------------------------------------------------------------ protocol 1 (vere-v3.5)

WRITS_1: dict[str, Noun] = {  # king -> serf: lord.c _lord_writ_make, by u3_writ_* case
    "play": n(c("play"), 1, from_list(BOOT)),  # u3_writ_play: [%play eve_d lit], eve_d of the first fact
    "work": n(c("work"), 0, JOB),  # u3_writ_work: [%work mil job], mil u3i_words(1, &mil_w)
    "live-save": n(c("live"), c("save"), EVE),  # u3_writ_save: [%live %save eve_d] (the king's eve_d)
    "peek": n(c("peek"), 0, SAM),  # u3_writ_peek: [%peek 0 sam] ("XX support timeouts")
    "live-cram": n(c("live"), c("cram"), EVE),  # u3_writ_cram: [%live %cram eve_d]
    "live-meld": n(c("live"), c("meld"), 0),  # u3_writ_meld
    "live-pack": n(c("live"), c("pack"), 0),  # u3_writ_pack
    "live-exit": n(c("live"), c("exit"), 0),  # u3_writ_exit: "requested exit code is always 0"
    "quiz-quac": n(c("quiz"), c("quac"), 0),  # u3_writ_quiz: [%quiz qiz_m ~] (u3_lord_quiz)
    "quiz-quic": n(c("quiz"), c("quic"), 0),
}

PLEAS_1: dict[str, Noun] = {  # serf -> king: serf.c unless noted
    "ripe": n(c("ripe"), n(1, 138, 4), EVE, MUG),  # u3_serf_init: [%ripe [pro hon noc] _serf_ripe]
    "ripe-new": n(c("ripe"), n(1, 138, 4), 0, 0),  # _serf_ripe: [dun_d mug_l], mug 0 before the boot
    "live": n(c("live"), 0),  # u3_serf_live: [%live ~] after %save, %cram, %pack, %meld
    "slog": SLOG,  # main.c _cw_serf_send_slog
    "flog": FLOG,  # main.c _cw_serf_send_stdr
    "peek-done": n(c("peek"), c("done"), UNIT),  # u3_serf_peek: [%peek %done dat]
    "peek-done-nul": n(c("peek"), c("done"), 0),  # (a ~ is "nothing there")
    "peek-bail": n(c("peek"), c("bail"), GOOF),  # u3_serf_peek: [%peek %bail gon]
    "play-done": n(c("play"), c("done"), MUG),  # u3_serf_play + _serf_play_{life,list}: [%done mug_l]
    "play-bail-life": n(c("play"), c("bail"), 0, 0, GOOF),  # _serf_play_life: u3nq(%bail, 0, 0, gon)
    "play-bail": n(c("play"), c("bail"), EVE - 1, MUG, GOOF),  # _serf_play_list: [%bail dun_d mug_l gon]
    "work-done": n(c("work"), c("done"), EVE, MUG, EFFECTS),  # u3_serf_work + _serf_work: [%done eve mug vir]
    "work-swap": n(c("work"), c("swap"), EVE, MUG, CRUD_JOB_1, EFFECTS),  # _serf_work: [%swap ... job vir]
    "work-bail-evil": n(c("work"), c("bail"), EVIL, 0),  # _serf_work: u3nt(%bail, gon, ~)
    "work-bail": n(c("work"), c("bail"), GON, DUD, 0),  # _serf_work: u3nq(%bail, gon, dud, ~): %crud's first
    "quiz-quac": n(c("quiz"), c("quac"), QUACS),  # u3_serf_writ %quiz %quac: [%quiz %quac res]
    "quiz-quic": n(c("quiz"), c("quic"), QUIC),  # u3_serf_writ %quiz %quic
}

# ------------------------------------------------------------------ protocol 2 (vere-v4.5)

WRITS_2: dict[str, Noun] = {  # king -> worker: lord.c
    "poke": n(c("poke"), 0, OVUM),  # _lord_writ_make u3_writ_poke: [%poke mil job]; mars.c adds the time
    "peek": n(c("peek"), 0, SAM),  # _lord_writ_make u3_writ_peek (u3_lord_peek): [%peek 0 sam]
    "sync-save": n(c("sync"), c("save"), 0),  # u3_lord_save
    "live-pack": n(c("live"), c("pack"), 0),  # u3_lord_pack
    "live-meld": n(c("live"), c("meld"), YES, NO),  # u3_lord_meld: [%live %meld dat]; mars.c reads [per for]
    "quiz-quac": n(c("quiz"), c("quac"), 0),  # u3_lord_quiz: u3nt(%quiz, qiz_m, ~)
    "quiz-quic": n(c("quiz"), c("quic"), 0),
    "exit": n(c("exit"), 0),  # u3_lord_exit -> _lord_writ_make u3_writ_exit: [%exit ~]
}

BUILT_2: dict[str, Callable[[], Noun]] = {
    "poke": lambda: mars.poke(OVUM),
    "peek": lambda: mars.peek(SAM),
    "sync-save": mars.sync_save,
    "live-pack": mars.live_pack,
    "live-meld": lambda: mars.live_meld(persistent=True, ford=False),
    "quiz-quac": lambda: mars.quiz("quac"),
    "quiz-quic": lambda: mars.quiz("quic"),
    "exit": mars.exit_,
}

PLEAS_2: dict[str, Noun] = {  # worker -> king: mars.c unless noted
    "ripe": n(c("ripe"), n(2, 0), n(WHO, NO), n(EVE, MUG)),  # u3_mars_work: [%ripe [2 ~] [who fak] [eve mug]]
    "poke-yes": n(c("poke"), YES, EFFECTS),  # _mars_work %poke -> _mars_fact: u3nt(%poke, c3y, pro)
    "poke-no-evil": n(c("poke"), NO, EVIL, 0),  # _mars_poke %evil: [pro ~]
    "poke-no": n(c("poke"), NO, DUD, GON, 0),  # _mars_poke: u3nt(dud, pro, ~): the event's goof first
    "peek-yes": n(c("peek"), YES, UNIT),  # _mars_work %peek: [%peek u3v_soft_peek()] (vortex.c: [%.y dat])
    "peek-no": n(c("peek"), NO, GOOF),  # noun/vortex.c u3v_soft_peek: u3nc(c3n, gon)
    "sync": n(c("sync"), EVE, MUG),  # _mars_flush: u3nt(%sync, dun_d, mug_l) once %sync %save is done
    "live": n(c("live"), 0),  # _mars_work %live: [%live ~] after %pack or %meld
    "quiz-quac": n(c("quiz"), c("quac"), QUACS),  # _mars_work %quiz %quac
    "quiz-quic": n(c("quiz"), c("quic"), QUIC),  # _mars_work %quiz %quic
    "slog": SLOG,  # main.c _cw_io_send_slog
    "flog": FLOG,  # main.c _cw_io_send_stdr
}

TABLES = {"1:writ": WRITS_1, "1:plea": PLEAS_1, "2:writ": WRITS_2, "2:plea": PLEAS_2}
ALL: dict[str, Noun] = {f"{t}:{name}": noun for t, table in TABLES.items() for name, noun in table.items()}


# ------------------------------------------------------------------ (a) king -> worker


@pytest.mark.parametrize("name", WRITS_2)
def test_protocol2_builders_make_the_fixture(name: str) -> None:
    assert BUILT_2[name]() == WRITS_2[name]


def test_protocol2_builder_defaults() -> None:
    # mars.c _mars_work %meld: anything but a [per for] pair of loobeans means [%.n %.n]
    assert mars.live_meld() == n(c("live"), c("meld"), NO, NO)
    assert mars.poke(OVUM, 250) == n(c("poke"), 250, OVUM)
    with pytest.raises(ValueError):
        mars.quiz("quack")


def test_king_client_sends_protocol1_writs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """seguro.urbit.serf.Serf builds its writs inline: capture them on their way to the reference ship."""
    sent: list[Noun] = []
    encode = newt.encode_noun

    def record(noun: Noun) -> bytes:
        sent.append(noun)
        return encode(noun)

    monkeypatch.setattr(newt, "encode_noun", record)
    serf = Serf(pier=tmp_path)
    try:
        serf.play(1, BOOT)
        assert serf.work(JOB).eve == EVE
        serf.save()
        assert serf.peek(SAM) == 0  # the reference ship has nothing at that path
        assert serf.exit(0) == 0
    finally:
        serf.kill()
    assert sent == [WRITS_1[k] for k in ("play", "work", "live-save", "peek", "live-exit")]


def test_reference_worker_accepts_protocol1_writs(tmp_path: Path) -> None:
    """Each writ, in a sequence that makes sense, answered by the reference ship with a plea we parse.
    Not sent: %quiz (the reference ship does not implement it; vere-v3.5's serf does)."""
    serf = worker.Serf(tmp_path, kernel.load_snapshot(tmp_path), lambda plea: None)
    assert parse_play(serf.writ(WRITS_1["play"])) == serf.kernel.mug()
    assert parse_work(serf.writ(WRITS_1["work"]), JOB, EVE).eve == EVE
    for name in ("live-save", "live-cram", "live-meld", "live-pack"):
        assert parse_live(serf.writ(WRITS_1[name])) is None
    assert parse_peek(serf.writ(WRITS_1["peek"])) == 0
    with pytest.raises(kernel.ExitRequested) as exit_info:
        serf.writ(WRITS_1["live-exit"])
    assert exit_info.value.code == 0


# ------------------------------------------------------------------ (b) worker -> king


@dataclass(frozen=True)
class Bail:
    """The parser raises `cls` (a deterministic refusal) with these attributes."""

    cls: type[SerfBail]
    attrs: dict[str, object] = field(default_factory=dict)


def work_at(eve: int) -> Parser:
    return lambda message: parse_work(message, JOB, eve)


def quiz(kind: str) -> Parser:
    return lambda message: mars.parse_quiz(message, kind)


def slog_text(message: Noun) -> object:
    """What the king's reader logs of a %slog (child.WorkerProcess._log_message)."""
    assert isinstance(message, tuple) and message[0] == c("slog") and isinstance(message[1], tuple)
    return message[1][0], render_tank(message[1][1])


def flog_text(message: Noun) -> object:
    assert isinstance(message, tuple) and message[0] == c("flog")
    return render_cord(message[1])


PARSED: list[tuple[int, str, Parser, object]] = [
    (1, "ripe", parse_ripe, Ripe(protocol=1, hoon_kelvin=138, nock_kelvin=4, eve=EVE, mug=MUG)),
    (1, "ripe-new", parse_ripe, Ripe(protocol=1, hoon_kelvin=138, nock_kelvin=4, eve=0, mug=0)),
    (1, "live", parse_live, None),
    (1, "slog", slog_text, (0, "hi")),
    (1, "flog", flog_text, "hi\n"),
    (1, "peek-done", parse_peek, UNIT),
    (1, "peek-done-nul", parse_peek, 0),
    (1, "peek-bail", parse_peek, Bail(PeekBail, {"goof": GOOF})),
    (1, "play-done", parse_play, MUG),
    (1, "play-bail-life", parse_play, Bail(PlayBail, {"eve": 0, "mug": 0, "goof": GOOF})),
    (1, "play-bail", parse_play, Bail(PlayBail, {"eve": EVE - 1, "mug": MUG, "goof": GOOF})),
    (1, "work-done", work_at(EVE), WorkDone(EVE, MUG, JOB, to_list(EFFECTS), swapped=False)),
    (1, "work-swap", work_at(EVE), WorkDone(EVE, MUG, CRUD_JOB_1, to_list(EFFECTS), swapped=True)),
    (1, "work-bail-evil", work_at(EVE), Bail(WorkBail, {"job": JOB, "goofs": [EVIL]})),
    (1, "work-bail", work_at(EVE), Bail(WorkBail, {"job": JOB, "goofs": [GON, DUD]})),
    (1, "quiz-quac", quiz("quac"), QUACS),  # same shape in both protocols: mars_protocol's parser
    (1, "quiz-quic", quiz("quic"), QUIC),
    (2, "ripe", mars.parse_ripe2, mars.Ripe2(protocol=2, who=WHO, fake=False, eve=EVE, mug=MUG)),
    (2, "poke-yes", mars.parse_poke, to_list(EFFECTS)),
    (2, "poke-no-evil", mars.parse_poke, Bail(mars.PokeBail, {"goofs": [EVIL]})),
    (2, "poke-no", mars.parse_poke, Bail(mars.PokeBail, {"goofs": [DUD, GON]})),
    (2, "peek-yes", mars.parse_peek2, UNIT),
    (2, "peek-no", mars.parse_peek2, Bail(PeekBail, {"goof": GOOF})),
    (2, "sync", mars.parse_sync, (EVE, MUG)),
    (2, "live", mars.parse_live2, None),
    (2, "quiz-quac", quiz("quac"), QUACS),
    (2, "quiz-quic", quiz("quic"), QUIC),
    (2, "slog", slog_text, (0, "hi")),
    (2, "flog", flog_text, "hi\n"),
]
PARSED_IDS = [f"{p}:{name}" for p, name, *_ in PARSED]


def test_every_worker_message_has_a_parser_case() -> None:
    for protocol, pleas in ((1, PLEAS_1), (2, PLEAS_2)):
        assert sorted(name for p, name, _, _ in PARSED if p == protocol) == sorted(pleas)


@pytest.mark.parametrize(("protocol", "name", "parser", "expected"), PARSED, ids=PARSED_IDS)
def test_parsers_read_the_fixture(protocol: int, name: str, parser: Parser, expected: object) -> None:
    message = (PLEAS_1 if protocol == 1 else PLEAS_2)[name]
    if not isinstance(expected, Bail):
        assert parser(message) == expected
        return
    with pytest.raises(expected.cls) as info:
        parser(message)
    for attr, value in expected.attrs.items():
        assert getattr(info.value, attr) == value


def test_protocol2_fake_ship() -> None:
    ripe = mars.parse_ripe2(n(c("ripe"), n(2, 0), n(0, YES), n(0, 0)))
    assert (ripe.who, ripe.fake, ripe.eve, ripe.mug) == (0, True, 0, 0)


# ------------------------------------------------------------------ (c) newt round trip


@pytest.mark.parametrize("key", ALL)
def test_fixture_round_trips_through_newt(key: str) -> None:
    frame = newt.encode_noun(ALL[key])
    assert frame[0] == newt.NEWT_VERSION and int.from_bytes(frame[1:5], "little") == len(frame) - 5
    [payload] = newt.FrameDecoder().feed(frame)
    assert newt.decode_noun(payload) == ALL[key]


# ------------------------------------------------------------------ (d) malformed messages

BIG_EVE, BIG_MUG = 1 << 64, 1 << 32
MALFORMED: list[tuple[str, Parser, Noun]] = [
    ("atom-message", parse_ripe, c("ripe")),
    ("atom-%play-body", parse_play, n(c("play"), c("done"))),
    ("atom-%work-body", work_at(EVE), n(c("work"), 0)),
    ("atom-%peek", mars.parse_peek2, c("peek")),
    ("atom-%poke-body", mars.parse_poke, n(c("poke"), 0)),
    ("atom-%sync-body", mars.parse_sync, n(c("sync"), EVE)),
    ("atom-ripe2-version", mars.parse_ripe2, n(c("ripe"), 2, n(WHO, NO), n(EVE, MUG))),
    ("atom-%play-bail-goof", parse_play, n(c("play"), c("bail"), EVE, MUG, 0)),  # lord.c u3a_is_cell(dud)
    ("atom-%work-swap-job", work_at(EVE), n(c("work"), c("swap"), EVE, MUG, 0, EFFECTS)),
    ("effects-not-a-list", mars.parse_poke, n(c("poke"), YES, 5)),
    ("eve-ripe1", parse_ripe, n(c("ripe"), n(1, 138, 4), BIG_EVE, MUG)),
    ("eve-ripe2", mars.parse_ripe2, n(c("ripe"), n(2, 0), n(WHO, NO), n(BIG_EVE, MUG))),
    ("eve-%play-bail", parse_play, n(c("play"), c("bail"), BIG_EVE, MUG, GOOF)),
    ("eve-%work-done", work_at(BIG_EVE), n(c("work"), c("done"), BIG_EVE, MUG, EFFECTS)),
    ("eve-%sync", mars.parse_sync, n(c("sync"), BIG_EVE, MUG)),
    ("eve-not-expected", work_at(EVE), n(c("work"), c("done"), EVE + 1, MUG, EFFECTS)),
    ("mug-ripe1", parse_ripe, n(c("ripe"), n(1, 138, 4), EVE, BIG_MUG)),
    ("mug-ripe2", mars.parse_ripe2, n(c("ripe"), n(2, 0), n(WHO, NO), n(EVE, BIG_MUG))),
    ("mug-%play-done", parse_play, n(c("play"), c("done"), BIG_MUG)),
    ("mug-%work-swap", work_at(EVE), n(c("work"), c("swap"), EVE, BIG_MUG, CRUD_JOB_1, EFFECTS)),
    ("mug-%sync", mars.parse_sync, n(c("sync"), EVE, BIG_MUG)),
    ("byte-kelvin", parse_ripe, n(c("ripe"), n(1, 256, 4), EVE, MUG)),  # lord.c u3r_safe_byte(hon)
    ("who-over-128-bits", mars.parse_ripe2, n(c("ripe"), n(2, 0), n(1 << 128, NO), n(EVE, MUG))),
    ("loobean-fak", mars.parse_ripe2, n(c("ripe"), n(2, 0), n(WHO, 2), n(EVE, MUG))),
    ("loobean-%poke", mars.parse_poke, n(c("poke"), 2, EFFECTS)),
    ("loobean-%peek", mars.parse_peek2, n(c("peek"), 2, UNIT)),
    ("%done-to-parse_poke", mars.parse_poke, n(c("poke"), c("done"), EFFECTS)),
    ("%done-to-parse_peek2", mars.parse_peek2, PLEAS_1["peek-done"]),
    ("%.y-to-parse_peek", parse_peek, PLEAS_2["peek-yes"]),
    ("ripe1-to-parse_ripe2", mars.parse_ripe2, PLEAS_1["ripe"]),
    ("ripe2-to-parse_ripe", parse_ripe, PLEAS_2["ripe"]),
    ("protocol-2-in-ripe1", parse_ripe, n(c("ripe"), n(2, 138, 4), EVE, MUG)),
    ("protocol-1-in-ripe2", mars.parse_ripe2, n(c("ripe"), n(1, 0), n(WHO, NO), n(EVE, MUG))),
    ("%live-not-nul", parse_live, n(c("live"), 5)),
    ("%live-not-nul-2", mars.parse_live2, n(c("live"), c("pack"), 0)),
    ("unknown-%play-tag", parse_play, n(c("play"), c("swap"), MUG)),
    ("unknown-%work-tag", work_at(EVE), n(c("work"), c("drop"), 0)),
    ("wrong-quiz-kind", quiz("quac"), PLEAS_2["quiz-quic"]),
    ("wrong-tag", mars.parse_sync, PLEAS_2["live"]),
]


@pytest.mark.parametrize(("parser", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_messages_are_protocol_errors(parser: Parser, message: Noun) -> None:
    with pytest.raises(SerfProtocolError):
        parser(message)
