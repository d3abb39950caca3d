package server

import "context"

// HoldScans takes n of tenant's scan slots (and as many of the replica's),
// as n running whole-tenant queries would, until release is called.
func (s *Server) HoldScans(ctx context.Context, tenant string, n int) (release func(), err error) {
	var held []func()
	release = func() {
		for _, r := range held {
			r()
		}
	}
	for range n {
		r, err := s.scans.acquire(ctx, tenant)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, r)
	}
	return release, nil
}
