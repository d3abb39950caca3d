package main

import (
	"fmt"
	"strconv"
)

// scaleRow is the group-size row at members and concurrency c, or nil.
func (r *Results) scaleRow(members, c int) *GroupScaleRow {
	for i := range r.GroupScale {
		if g := &r.GroupScale[i]; g.Members == members && g.Concurrency == c {
			return g
		}
	}
	return nil
}

// evaluateScale adds the targets of issue 20 on member PATCHes by group
// size and on the PostgreSQL cycle's sync lag.
func (r *Results) evaluateScale() {
	c := r.headline()
	small, large := r.scaleRow(smallScaleGroup, c), r.scaleRow(r.Cycle.Users, c)
	s1, l1 := r.scaleRow(smallScaleGroup, 1), r.scaleRow(r.Cycle.Users, 1)
	if small != nil && large != nil {
		a := large.Add
		verdict := status(a.P99ms <= 50 && a.Errors == 0)
		if r.Cycle.Users < 100000 {
			verdict = "not measured at 100,000 (this run: " + strconv.Itoa(r.Cycle.Users) + " members); " + verdict + " at this size"
		}
		r.Targets = append(r.Targets, Target{"member PATCH (+100) into a 100,000-member group p99 ≤ 50 ms at concurrency 8 (issue 20)",
			fmt.Sprintf("p99 %.1f ms, p50 %.1f ms into %d members at concurrency %d (errors %d)", a.P99ms, a.P50ms, large.Members, c, a.Errors), verdict})
		// The cost comparison is at concurrency 1: at 8, PATCHes into one
		// group also wait for each other.
		if s1 != nil && l1 != nil {
			same := l1.WritesPerReq <= s1.WritesPerReq+0.25 && l1.ReadsPerReq <= s1.ReadsPerReq+0.25
			r.Targets = append(r.Targets, Target{"a membership change costs the same whatever the group's size (issue 20)",
				fmt.Sprintf("at concurrency 1, per PATCH: %.2f writes, %.2f reads into %d members; %.2f writes, %.2f reads into %d; +100 p50 %.1f ms vs %.1f ms",
					s1.WritesPerReq, s1.ReadsPerReq, s1.Members, l1.WritesPerReq, l1.ReadsPerReq, l1.Members, s1.Add.P50ms, l1.Add.P50ms),
				status(same)})
		}
		if a.P99ms > 50 {
			cause := fmt.Sprintf("Member PATCH p99 %.1f ms at concurrency %d: the %d PATCHes go to one group, and a replica writes one membership change of a group at a time "+
				"(they append to the same last shard); the changes that arrive meanwhile are written together as one batch when the turn comes, so a PATCH waits for at most the batch ahead of it and then its own; ", a.P99ms, c, c)
			if l1 != nil {
				cause += fmt.Sprintf("alone (concurrency 1) the same PATCH had p50 %.1f ms and p99 %.1f ms. ", l1.Add.P50ms, l1.Add.P99ms)
			}
			if base := r.baselineAt(c); base != nil {
				cause += fmt.Sprintf("A batch is two API writes in a row (the shard, then the group's stamp, which moves its ETag), so the slowest PATCH waits for about four; "+
					"in the same run a bare client-go create, one API write, had p50 %.1f ms and p99 %.1f ms at this concurrency: four API writes in a row do not fit in 50 ms on this machine.", base.P50ms, base.P99ms)
			}
			r.Causes = append(r.Causes, cause)
		}
	}
	if pg := r.PostgresCycle; pg != nil {
		if l := pg.lag("all"); l != nil && l.Observations > 0 {
			r.Targets = append(r.Targets, Target{"database sync lag p99 < 2 s during the cycle on PostgreSQL (issue 20)",
				fmt.Sprintf("histogram p99 %s, p50 %s (%d syncs%s) at %d users", secs(l.P99Seconds), secs(l.P50Seconds), l.Observations, pg.perKindP99(), pg.Users),
				status(l.P99Seconds < 2)})
		}
	}
}

// baselineAt is the baseline create result at concurrency c, or nil.
func (r *Results) baselineAt(c int) *OpResult {
	for i := range r.Baseline {
		if b := &r.Baseline[i]; b.Concurrency == c && b.Op == "baseline create" {
			return b
		}
	}
	return nil
}

func markdownGroupScale(p func(string, ...any), r *Results) {
	if len(r.GroupScale) == 0 {
		return
	}
	p("\n## 3b. Member PATCH by group size (issue 20)\n\n")
	p("After the cycle, a group of %d members is built, and the cycle's group of every user is used as it is. ", smallScaleGroup)
	p("Each timed pair sends Entra's `Remove` of 100 members and then its `Add` of the same 100, so the group keeps its size; %d pairs per row, ", r.Options.GroupPatches)
	p("pairs running at once use different members, all in the same group. API requests are per member PATCH (adds and removes together), ")
	p("the controllers' included; *drain* is how long the controllers needed after the last PATCH to bring the helpdesk database level (at least 0.9 s: three idle polls).\n\n")
	p("| group members | concurrency | +100 p50 ms | +100 p95 ms | +100 p99 ms | −100 p50 ms | −100 p99 ms | errors | writes per PATCH | reads per PATCH | writes by verb and resource | drain s |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, g := range r.GroupScale {
		p("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %s | %.1f |\n", g.Members, g.Concurrency,
			g.Add.P50ms, g.Add.P95ms, g.Add.P99ms, g.Remove.P50ms, g.Remove.P99ms, g.Add.Errors+g.Remove.Errors,
			g.WritesPerReq, g.ReadsPerReq, describeCalls(g.Writes), g.DrainSeconds)
	}
}

func markdownPostgres(p func(string, ...any), r *Results) {
	pg := r.PostgresCycle
	if pg == nil {
		return
	}
	p("\n## 3c. The same cycle on PostgreSQL (issue 20)\n\n")
	p("A second tenant (namespace `%s`) whose ProvisioningConfig points its helpdesk database at PostgreSQL on this machine (`--postgres`, the database created afresh), ", pg.Tenant)
	p("after the sections above: the same cycle with %d users, %d groups and %d memberships at concurrency %d, while the operator still caches the first cycle's objects.\n\n",
		pg.Users, pg.Groups, pg.Memberships, pg.Concurrency)
	markdownCycleFigures(p, pg, "PostgreSQL", r.Options.SyncTimeout)
}

func markdownDBRates(p func(string, ...any), r *Results) {
	if len(r.DBRates) == 0 {
		return
	}
	p("\n## 3d. What each helpdesk database takes (issue 20)\n\n")
	p("The store alone (`internal/helpdesk`, no operator, no API server), measured before the stack started: %d new users upserted, ", r.DBRates[0].Rows)
	p("then as many members added to one group per writer, 100 more per `SyncMembers` call given the group's whole list (as the group controller syncs a member PATCH). ")
	p("Concurrency 4 is the operator's write slots per database and kind. The sync lag above stays low while the cycle asks less than this of the database.\n\n")
	p("| database | concurrency | user upserts per s | member rows per s |\n|---|--:|--:|--:|\n")
	for _, d := range r.DBRates {
		p("| %s | %d | %.0f | %.0f |\n", d.Database, d.Concurrency, d.UserUpserts, d.MemberRows)
	}
}
