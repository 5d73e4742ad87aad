"""The pure replication core: one replica's election, fencing, batching and effect-release decisions, as
state machines fed events and a clock and answering with a `Ready`. No I/O of any kind (no sockets,
threads, processes, clocks, etcd, gRPC or RocksDB): `lint-imports` holds it to that."""
