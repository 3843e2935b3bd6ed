package ledger

import (
	"encoding/json"
	"fmt"
	"net/http"
)

var retryable = map[int]bool{
	http.StatusTooManyRequests:    true,
	http.StatusBadGateway:         true,
	http.StatusServiceUnavailable: true,
}

const maxAttempts = 5

// Entry is one ledger entry.
type Entry struct {
	Path string `json:"path"`
}

// FetchEntry gets one entry, retrying what the upstream says is temporary.
func FetchEntry(c *http.Client, base string, id int) (*Entry, error) {
	url := fmt.Sprintf("%s/v1/entries/%d", base, id)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		resp, err := c.Get(url)
		if err != nil {
			continue
		}
		if retryable[resp.StatusCode] {
			resp.Body.Close()
			continue
		}
		defer resp.Body.Close()
		var e Entry
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return nil, err
		}
		return &e, nil
	}
	return nil, fmt.Errorf("%s: gave up after %d attempts", url, maxAttempts)
}

// Sum adds the amounts of a page.
func Sum(xs []int) int {
	t := 0
	for i := 0; i < len(xs); i++ {
		t += xs[i]
	}
	return t
}
