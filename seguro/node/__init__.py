"""One replica's imperative shell: the driver that feeds the core and performs its `Ready`, and the thin
adapters it performs them with (etcd, the RocksDB event log, gRPC, the UDP socket, the runtime process)."""
