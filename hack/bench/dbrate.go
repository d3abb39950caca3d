package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/namekey"
)

// DBRate is what one helpdesk database takes straight from the store, with
// no operator in between: the ceiling under the sync's rows per second.
type DBRate struct {
	Database    string  `json:"database"`
	Concurrency int     `json:"concurrency"`
	Rows        int     `json:"rows"`
	UserUpserts float64 `json:"userUpsertsPerSecond"`
	// MemberRows is members added per second by SyncMembers, each call
	// given the group's whole member list with 100 more (as the group
	// controller syncs a member PATCH), one group per writer.
	MemberRows float64 `json:"memberRowsPerSecond"`
}

// dbRates measures user upserts and member inserts per second at
// concurrency 1 and the operator's write slots per database (4), on a
// fresh SQLite file and, with --postgres, on the PostgreSQL database.
// It runs before the stack starts: the machine's other work aside, the
// database has the machine to itself.
func dbRates(ctx context.Context, o *options, tmp string) []DBRate {
	var out []DBRate
	type database struct{ name, url string }
	urls := []database{{"SQLite", "sqlite://" + filepath.Join(tmp, "rate", "helpdesk.db")}}
	if o.Postgres != "" {
		urls = append(urls, database{"PostgreSQL", o.Postgres})
	}
	for _, u := range urls {
		st, err := helpdesk.Open(ctx, u.url)
		if err != nil {
			progress("database write rate on %s: %v", u.name, err)
			continue
		}
		for _, c := range []int{1, 4} {
			r := DBRate{Database: u.name, Concurrency: c, Rows: 2000}
			tenant := fmt.Sprintf("bench-rate-%d", c)
			var mu sync.Mutex
			var failed error
			fail := func(err error) {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			wall := pool(ctx, r.Rows, c, func(i int) {
				id := fmt.Sprintf("rate-%06d", i)
				name := id + "@rate.test"
				if _, err := st.UpsertUser(ctx, helpdesk.User{Tenant: tenant, SCIMID: id, UserName: name, UserNameKey: namekey.Key(name), Active: true}); err != nil {
					fail(err)
				}
			})
			r.UserUpserts = float64(r.Rows) / wall.Seconds()
			members := make([]string, 0, r.Rows)
			for i := range r.Rows {
				members = append(members, fmt.Sprintf("rate-%06d", i))
			}
			// c groups filled at once, 100 members more per call.
			start := time.Now()
			pool(ctx, c, c, func(g int) {
				group := fmt.Sprintf("rate-group-%d", g)
				if _, err := st.UpsertGroup(ctx, helpdesk.Group{Tenant: tenant, SCIMID: group, DisplayName: group}); err != nil {
					fail(err)
					return
				}
				for n := 100; n <= len(members); n += 100 {
					if _, _, err := st.SyncMembers(ctx, tenant, group, members[:n]); err != nil {
						fail(err)
						return
					}
				}
			})
			r.MemberRows = float64(c*len(members)) / time.Since(start).Seconds()
			if failed != nil {
				progress("database write rate on %s: %v", u.name, failed)
			}
			progress("  %s c=%d: %.0f user upserts/s, %.0f member rows/s", u.name, c, r.UserUpserts, r.MemberRows)
			out = append(out, r)
		}
		_ = st.Close()
	}
	return out
}
