"""vere's own event log on disk (a pier's `.urb/log/`), read and written as vere 1.x-4.x do: LMDB
environments, the EVENTS and META tables, epochs (`0i<N>`), `epoc.txt` and `vere.txt`. Facts from
urbit/vere's pkg/vere/disk.c and pkg/vere/db/lmdb.c at tags vere-v3.5 and vere-v4.5 (see the README)."""
