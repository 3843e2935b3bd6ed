package prices

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// All returns every item's price, asking for them all at once.
func All(ctx context.Context, ids []string, get func(context.Context, string) (int, error)) ([]int, error) {
	out := make([]int, len(ids))
	g, ctx := errgroup.WithContext(ctx)
	for i, id := range ids {
		i, id := i, id
		g.Go(func() error {
			p, err := get(ctx, id)
			if err != nil {
				return err
			}
			out[i] = p
			return nil
		})
	}
	return out, g.Wait()
}
