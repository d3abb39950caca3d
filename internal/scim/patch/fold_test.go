package patch

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// members is a group's members and their displays ("" none).
type members map[string]string

// applyOp is one operation applied on its own: the reference.
func (m members) applyOp(op MemberOp) {
	switch op.Kind {
	case MemberAdd:
		for _, id := range op.IDs {
			if d, ok := op.Displays[id]; ok {
				m[id] = d
			} else if _, in := m[id]; !in {
				m[id] = ""
			}
		}
	case MemberRemove:
		for _, id := range op.IDs {
			delete(m, id)
		}
	case MemberClear, MemberReplace:
		clear(m)
		for _, id := range op.IDs {
			m[id] = op.Displays[id]
		}
	}
}

// applyNet is a folded outcome applied as the stores apply it (see
// MemberNet).
func (m members) applyNet(n MemberNet) {
	if n.ReplaceAll {
		for id := range m {
			if !n.Want[id] {
				delete(m, id)
			}
		}
	}
	for id, in := range n.Want {
		switch d, decided := n.Display[id]; {
		case !in:
			delete(m, id)
		case decided:
			m[id] = d
		default: // kept, or none for a new member
			if _, in := m[id]; !in {
				m[id] = ""
			}
		}
	}
}

// TestFoldMembersIsSequential: folding operations and applying the
// outcome leaves a group as applying them one by one does, displays
// included. The repository folds the operations of several requests
// waiting for a group's turn into one write, so this is what makes a
// batch the same as its requests in a row. SCIM_FOLD_SEED=N repeats a run.
func TestFoldMembersIsSequential(t *testing.T) {
	seed := seedFrom(t, "SCIM_FOLD_SEED")
	rng := rand.New(rand.NewPCG(seed, 0))
	kinds := []MemberOpKind{MemberAdd, MemberAdd, MemberRemove, MemberRemove, MemberReplace, MemberClear}
	for run := range 20000 {
		start := members{}
		for i := range 4 {
			if rng.IntN(2) == 0 {
				start[fmt.Sprint("u", i)] = []string{"", "old"}[rng.IntN(2)]
			}
		}
		ops := make([]MemberOp, 1+rng.IntN(4))
		for i := range ops {
			op := MemberOp{Kind: kinds[rng.IntN(len(kinds))], Displays: map[string]string{}}
			if op.Kind != MemberClear {
				for j := range 4 {
					if rng.IntN(2) == 0 {
						id := fmt.Sprint("u", j)
						op.IDs = append(op.IDs, id)
						if op.Kind != MemberRemove && rng.IntN(2) == 0 {
							op.Displays[id] = fmt.Sprint("d", i)
						}
					}
				}
			}
			ops[i] = op
		}
		want, got := maps.Clone(start), maps.Clone(start)
		for _, op := range ops {
			want.applyOp(op)
		}
		got.applyNet(FoldMembers(ops))
		if !maps.Equal(got, want) {
			t.Fatalf("run %d (SCIM_FOLD_SEED=%d): from %v, ops %+v:\n want %v\n  got %v", run, seed, start, ops, want, got)
		}
	}
}

// seedFrom is the random seed in the environment variable name, or the
// time; the test logs it.
func seedFrom(t *testing.T, name string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		seed = s
	}
	t.Logf("%s=%d", name, seed)
	return seed
}
