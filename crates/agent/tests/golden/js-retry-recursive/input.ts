import axios, { AxiosInstance } from 'axios';

// Tries again by calling itself, as soon as the call failed.
export async function fetchUser(api: AxiosInstance, id: string, tries = 0): Promise<unknown> {
  try {
    const res = await api.get(`/users/${id}`);
    return res.data;
  } catch (e) {
    if (axios.isAxiosError(e) && e.response?.status === 429 && tries < 5) return fetchUser(api, id, tries + 1);
    throw e;
  }
}
