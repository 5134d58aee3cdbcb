"""The web adapter: FastAPI app, JSON API, portal and feed endpoints."""
