"""``syncd run``: syncd as a long-running service.

One job per module: :mod:`schedule` (when a binding's next pass is due), :mod:`leases` (which worker
may run which binding, in the store's database), :mod:`scheduler` (APScheduler jobs for the
bindings this worker holds), :mod:`kept` (each binding's connector, kept from pass to pass),
:mod:`metrics` (Prometheus), :mod:`http` (``/healthz`` and ``/metrics``), :mod:`notify` (systemd's
sd_notify protocol) and :mod:`daemon` (signals, start, stop).
"""
