"""`python -m seguro.urbit.ship`, the reference ship as a runtime's argv names it: `seguro ship`."""

from seguro.urbit.ship.command import command

command(prog_name="python -m seguro.urbit.ship")
