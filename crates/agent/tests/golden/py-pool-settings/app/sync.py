from concurrent.futures import ThreadPoolExecutor

from app import settings
from app.client import fetch_contact


def sync_contacts(ids):
    with ThreadPoolExecutor(max_workers=settings.SYNC_WORKERS) as pool:
        return list(pool.map(fetch_contact, ids))
