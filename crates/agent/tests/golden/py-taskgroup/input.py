import asyncio


async def refresh_profiles(client, user_ids):
    profiles = {}
    async with asyncio.TaskGroup() as tg:
        for uid in user_ids:
            profiles[uid] = tg.create_task(client.fetch_profile(uid))
    return {uid: t.result() for uid, t in profiles.items()}
