"""Throughput and latency benchmark of the action server under concurrent conversations.

`python -m bench` (or `make bench`) starts the simulators and the real rasa-sdk action
server on loopback, drives every vendor action with a load generator and writes a report
under `bench/results/`. Nothing here is part of the product: the `actions` package never
imports `bench`.
"""
