"""经办: the bureau's service items (事项) as data and one workflow engine for all of them.

``catalogue`` holds the items and validates application forms; ``calendar`` counts working days;
``workflow`` is the pure state machine; ``store`` keeps cases, events and the entitlement facts a
finished case records; ``rest`` and ``commands`` are its API and CLI faces.
"""
