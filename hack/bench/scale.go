package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// GroupScaleRow is the cost of member PATCHes in a group of one size at
// one concurrency (issue 20): Entra's Add of 100 members, and its Remove
// of the same 100, which returns the group to its size.
type GroupScaleRow struct {
	Members     int      `json:"groupMembers"`
	Concurrency int      `json:"concurrency"`
	Add         OpResult `json:"add"`
	Remove      OpResult `json:"remove"`
	// WritesPerReq and ReadsPerReq are API calls per member PATCH (adds
	// and removes together), the controller's status writes included.
	WritesPerReq float64            `json:"writesPerRequest"`
	ReadsPerReq  float64            `json:"readsPerRequest"`
	Writes       map[string]float64 `json:"writesByResource"`
	Reads        map[string]float64 `json:"readsByResource"`
	// DrainSeconds is how long the controllers needed after the last
	// PATCH to bring the helpdesk database level with it.
	DrainSeconds float64 `json:"drainSeconds"`
}

// smallScaleGroup is the size of the small group of the comparison.
const smallScaleGroup = 1000

// groupScale measures member PATCHes into a group of smallScaleGroup
// members and into the cycle's "All users" group (every user), at
// concurrency 1 and --concurrency: the cost of a membership change should
// not depend on the group's size. Each timed pair removes 100 members and
// adds them back, so the group keeps its size; pairs that run at once use
// different members.
func (b *bench) groupScale(ctx context.Context, res *Results, run cycleRun) error {
	n := res.Cycle.Users
	if n < 2*smallScaleGroup {
		progress("member PATCH by group size: skipped (needs at least %d users)", 2*smallScaleGroup)
		return nil
	}
	progress("member PATCH by group size: filling a group of %d members", smallScaleGroup)
	small, err := run.sc.createGroup(ctx, "scale-1000")
	if err != nil {
		return fmt.Errorf("creating the small scale group: %w", err)
	}
	for off := 0; off < smallScaleGroup; off += 100 {
		if err := run.sc.addMembers(ctx, small, run.ids[off:off+100]); err != nil {
			return fmt.Errorf("filling the small scale group: %w", err)
		}
	}
	b.settle(ctx, 3*time.Minute)
	for _, g := range []struct {
		id      string
		members int
	}{{small, smallScaleGroup}, {run.gids[0], n}} {
		for _, c := range []int{1, b.o.Concurrency} {
			row := b.scaleRow(ctx, run, g.id, g.members, c)
			res.GroupScale = append(res.GroupScale, row)
		}
	}
	return nil
}

func (b *bench) scaleRow(ctx context.Context, run cycleRun, group string, members, c int) GroupScaleRow {
	k := b.o.GroupPatches
	batches := members / 100
	locks := make([]sync.Mutex, batches)
	var add, remove recorder
	before, _ := b.apiMetrics(ctx)
	wall := pool(ctx, k, c, func(i int) {
		j := (i * 7) % batches // spread over the group's shards
		locks[j].Lock()
		defer locks[j].Unlock()
		batch := run.ids[j*100 : j*100+100]
		if remove.time(func() error { return run.sc.removeMembers(ctx, group, batch) }) != nil {
			return
		}
		_ = add.time(func() error { return run.sc.addMembers(ctx, group, batch) })
	})
	drain := b.settle(ctx, 3*time.Minute)
	row := GroupScaleRow{Members: members, Concurrency: c, DrainSeconds: drain.Seconds(),
		Add:    add.result("PATCH /Groups (+100 members)", c, wall),
		Remove: remove.result("PATCH /Groups (-100 members)", c, wall)}
	if after, err := b.apiMetrics(ctx); err == nil && before != nil {
		a := apiDelta(before, after, "member PATCH", c, 2*k)
		row.WritesPerReq, row.ReadsPerReq, row.Writes, row.Reads = a.WritesPerReq, a.ReadsPerReq, a.Writes, a.Reads
	}
	progress("  group of %d, c=%d: +100 p50 %.1f ms p99 %.1f ms, -100 p50 %.1f ms p99 %.1f ms, %.2f writes %.2f reads per PATCH, errors %d, drained in %.1fs",
		members, c, row.Add.P50ms, row.Add.P99ms, row.Remove.P50ms, row.Remove.P99ms, row.WritesPerReq, row.ReadsPerReq,
		row.Add.Errors+row.Remove.Errors, row.DrainSeconds)
	return row
}
