"""The dashboard as a host part: no consumer, just the page at ``/`` and its assets."""

from __future__ import annotations

from fastapi import APIRouter

from medic.runtime import Service
from medic.services.dashboard.views import router


class DashboardService(Service):
    name = "dashboard"
    consumes = None

    def __init__(self, *, api_url: str | None = None) -> None:
        self.api_url = api_url
        """None: read the API of the host it is mounted in; else another service's base URL."""

    def router(self) -> APIRouter:
        return router(api_url=self.api_url)
