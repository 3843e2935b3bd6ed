import httpx


async def get_item(client: httpx.AsyncClient, item_id: str) -> dict:
    while True:
        r = await client.get(f"/v1/items/{item_id}")
        if r.status_code == 429: continue
        r.raise_for_status()
        return r.json()

