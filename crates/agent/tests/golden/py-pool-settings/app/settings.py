"""Service settings."""
import os

API_URL = os.environ.get("API_URL", "https://api.example.com")
SYNC_WORKERS = 64
