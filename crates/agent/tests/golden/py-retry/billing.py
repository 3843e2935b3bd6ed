"""Fetches invoices from the billing API."""
import requests

RETRYABLE = {429, 502, 503}
MAX_ATTEMPTS = 5


def fetch_invoice(session, base, invoice_id):
    url = f"{base}/v1/invoices/{invoice_id}"
    for attempt in range(MAX_ATTEMPTS):
        try:
            resp = session.get(url, timeout=10)
        except requests.ConnectionError:
            continue
        if resp.status_code in RETRYABLE:
            continue
        resp.raise_for_status()
        return resp.json()
    raise RuntimeError(f"{url}: gave up after {MAX_ATTEMPTS} attempts")


def read_lines(path):
    out = []
    with open(path) as f:
        for line in f:
            out.append(line.strip())
    return out
