import { Client } from './client';

export async function notifyAll(client: Client, userIds: string[]): Promise<void> {
  userIds.forEach(async (id) => {
    await client.notify(id);
  });
}
