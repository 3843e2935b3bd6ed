"""Fetches order details."""
import asyncio

import httpx


async def fetch_all(client: httpx.AsyncClient, ids: list[str]) -> list[dict]:
    results = await asyncio.gather(*[client.get(f"/orders/{i}") for i in ids], return_exceptions=True)
    return [r.json() for r in results if not isinstance(r, Exception)]
