"""Operator tools built on the node layer: admin views and actions, local clusters and their etcd
processes, the demo and the benchmarks."""
