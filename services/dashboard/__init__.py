"""The operator dashboard at ``/``: a server-rendered page over the query and approval APIs.

It reads only the public JSON API (``/api/metrics/summary``, ``/api/failures``, ``/api/audit``,
``/api/approvals``), so it can sit in the all-in-one host or in front of split pods alike.
"""

from medic.services.dashboard.views import router

__all__ = ["router"]
