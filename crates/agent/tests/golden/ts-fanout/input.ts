import { Client } from './client';

export async function hydrate(client: Client, ids: string[]): Promise<string[]> {
  const rows = await Promise.all(ids.map(async (id) => {
    const r = await client.get(`/v1/items/${id}`);
    return r.name;
  }));
  return rows;
}
