"""Local simulators of the four vendor APIs.

They follow the vendors' documentation closely enough to be the offline default of the
action server and the peers of the test suite: a request the real vendor would reject, the
simulator rejects. Each simulator is an aiohttp application built on `sandbox.core`.
"""
