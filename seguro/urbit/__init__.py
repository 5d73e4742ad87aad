"""Urbit as vere knows it: nouns (jam, cue, mug), event records, the king <-> serf protocol and its newt
framing, the king's client of a worker process, the reference ship (a worker of our own), and Ames
datagrams. Knows nothing of replication; imports nothing from the other layers."""
