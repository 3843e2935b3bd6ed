package sync

import "sync"

func FetchAll(c *Client, ids []string) []Item {
	items := make([]Item, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			items[i], _ = c.GetItem(id)
		}(i, id)
	}
	wg.Wait()
	return items
}
