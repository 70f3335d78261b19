"""The replicated event log: entry schema, LMDB event store, Raft adapter, snapshots.

Imports no other meseta package.
"""
