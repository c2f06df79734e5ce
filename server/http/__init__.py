"""The HTTP service (tornado): ``make_app`` builds the application, ``server.serve`` runs it."""

from server.http.app import make_app
from server.http.state import DEFAULT_MAX_BODY, AppState, hard_body_limit

__all__ = ["DEFAULT_MAX_BODY", "AppState", "hard_body_limit", "make_app"]
