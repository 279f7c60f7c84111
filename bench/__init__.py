"""Benchmarks for syncd (issue 7): syncd against vdirsyncer and against the server's own limit, on the
same loopback Radicale and the same data, in one run. ``python -m bench --items 1000 10000``.

Not a test suite: it measures and prints a table. See docs/performance.md for how to read it.
"""
