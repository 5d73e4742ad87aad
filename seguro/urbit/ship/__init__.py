"""Reference ship runtime: the serf side of vere's king <-> serf protocol (vere <= 3.x, pkg/vere/serf.c).

Deterministic, small, but real: it reads newt frames on stdin, answers on stdout, keeps a kernel whose
mug changes with every event, snapshots atomically, and crashes events on request so that a king sees
every answer vere's serf gives: %ripe, %play %done/%bail, %work %done/%swap/%bail, %peek, %live, %slog, %flog.

Kernel: `[who eve chain peer-sum peer-count cruds timers]`. `chain` is a 128-bit hash chain over every event's
jam, `peer-sum` the sum mod 2^128 of one digest per Ames lane, so an event costs O(size of the event)
and the mug is the mug of that small noun. Events:
- `[da [[%a %ames ~] [%hear lane packet]]]`: counts the packet for its lane and emits exactly one
  `[[%newt ~] [%send lane ack]]` with ack = "ack <eve> peers=<n> seen=<k>".
- a packet starting with b"crash" crashes the event: like vere, the serf then runs and logs
  `[da [[%$ %arvo ~] [%crud goof ovum]]]` in its place and answers %work %swap.
- a packet starting with b"evil" is rejected as vere rejects bad ciphertext: %work %bail, not logged.
- a packet `slow <ms>` takes that long to run (at most 600 s) when it is new work, as a kernel upgrade
  or a large desk commit would; it is acked like any packet, and its replay does not wait again.
- a packet `later <ms>` gets no ack: it sets a timer for the event's time plus <ms> and emits
  `[//behn %doze [~ da]]` for the earliest pending timer. `[da [//behn %wake ~]]` answers `woke <N>`
  (N: the %wake's event number) to the lane of every timer due by da, and re-arms the next (or
  `%doze ~`); `[da [//behn %born ~]]` re-emits the %doze, as Arvo re-arms behn on every start.
- a packet `blit` is acked and also emits a dill `%blit` (a driver Seguro does not serve: counted);
  `galaxy <g> <text>` is acked and also sends <text> to the galaxy lane `[%.y g]`.
- anything else is folded into the chain without effects.
Boot (%play at event 1): `boot_events(who)`; BOOT_LIFE = 1 lifecycle formula, then timestamped events.
Peek: sam = [gang path]; path ~[%eve] / ~[%mug] / ~[%who] / ~[%peers] / ~[%cruds] gives [~ %noun value],
anything else ~. A remote-scry ("fine") peek, as vere makes it for a fine request, gets the fragments
Arvo would give (see `scry`: deterministic, with a dummy signature).

Modules: `kernel` (state, events, snapshots, boot), `scry` (the remote-scry namespace), `worker` (the
serf side of the protocol on stdin/stdout), `command` (the one entry point: `seguro ship` and
`python -m seguro.urbit.ship`).
"""
