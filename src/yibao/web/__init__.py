"""The web front door (网上服务大厅 / 经办台): server-rendered Chinese pages over the service's own
functions, in the same process, store, roles and audit log as the API.

:func:`yibao.web.app.install` mounts it on the FastAPI app under ``/web``; ``docs/web.md`` is the
user guide. Pages call the domain modules (``yibao.service.transactions`` and friends); nothing
here computes an amount itself.
"""
