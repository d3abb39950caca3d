package patch

import (
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// MemberOpKind says what a MemberOp does to a group's membership.
type MemberOpKind string

const (
	// MemberAdd adds IDs; adding a current member is a no-op.
	MemberAdd MemberOpKind = "add"
	// MemberRemove removes exactly IDs; removing a non-member is a no-op.
	MemberRemove MemberOpKind = "remove"
	// MemberReplace makes IDs the whole membership. IDs is never empty: an
	// empty replacement is reported as MemberClear.
	MemberReplace MemberOpKind = "replace"
	// MemberClear removes every member. It is produced only by a remove on
	// "members" with neither value nor filter, or by a replace with an empty
	// list or null.
	MemberClear MemberOpKind = "clear"
)

// MemberOp is one membership change, holding member ids (the "value"
// sub-attribute) in request order without duplicates.
type MemberOp struct {
	Kind MemberOpKind
	IDs  []string
	// Displays holds, for add and replace, the "display" the request sent
	// for some of IDs (id -> display); nil when it sent none.
	Displays map[string]string
}

// membersAttr is the group attribute kept outside the document when
// Options.ExternalMembers is set.
const membersAttr = "members"

// memberIDs reads the ids out of a members value: an array of objects, or a
// single object, each with a non-empty string "value"; a bare string (alone
// or in the array) is read as an id, as for other multi-valued complex
// attributes (docs/conformance.md). A string "display" is kept (its
// "displayName", which members do not have, is read as display when there
// is no "display"): a client reads back the display it sent for a member
// (docs/conformance.md). For an id sent twice, the later display wins.
// "$ref" and "type" are ignored: the id alone identifies a member, and
// Entra sends "$ref": null. Anything else is 400 invalidValue rather than a
// guess, because guessing wrong here adds or removes the wrong people.
func memberIDs(v any) ([]string, map[string]string, error) {
	var items []any
	switch v := v.(type) {
	case []any:
		items = v
	case map[string]any, string:
		items = []any{v}
	default:
		return nil, nil, scimerr.InvalidValue("members value must be an array of objects with a \"value\" id")
	}
	ids := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	var displays map[string]string
	for i, item := range items {
		id, isString := item.(string)
		display := ""
		if !isString {
			obj, ok := item.(map[string]any)
			if !ok {
				return nil, nil, scimerr.InvalidValue("members[%d] must be an object with a \"value\" id, or an id", i)
			}
			id, ok = lookupFold(obj, "value").(string)
			if !ok {
				id = ""
			}
			display = MemberDisplay(obj)
		}
		if id == "" {
			return nil, nil, scimerr.InvalidValue("members[%d] must have a non-empty string \"value\"", i)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		if display != "" {
			if displays == nil {
				displays = map[string]string{}
			}
			displays[id] = display
		}
	}
	return ids, displays, nil
}

// MemberDisplay returns the display a member object carries: its string
// "display", else its string "displayName" (a name members do not have,
// which Microsoft's test collection sends for display), else "". Its
// length is checked where it is stored (repository.KnownMembers).
func MemberDisplay(member map[string]any) string {
	d, _ := lookupFold(member, "display").(string)
	if d == "" {
		d, _ = lookupFold(member, "displayName").(string)
	}
	return d
}

// lookupFold returns m[name], matching the key case-insensitively when there
// is no exact match (clients send "Value" as often as "value").
func lookupFold(m map[string]any, name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// isMembers reports whether p is the group "members" attribute.
func (a *applier) isMembers(p schema.Path) bool {
	return p.IsCore() && p.Attr.Name == membersAttr && p.Attr.MultiValued
}

// memberOp turns an operation on "members" into a MemberOp. Entra's
// remove with a value array removes exactly those members; only a remove
// with neither value nor filter empties the group (docs/entra-interop.md
// §2 item 7 and §7: reading the value array as "remove the attribute"
// wipes groups).
func (a *applier) memberOp(kind string, t target, v any, hasValue bool) error {
	if t.path.Sub != nil {
		return scimerr.InvalidPath("sub-attributes of members cannot be addressed; use members or members[value eq \"<id>\"]")
	}
	if t.filter != nil {
		if kind != OpRemove {
			return scimerr.InvalidPath("members[...] filters are supported with remove only; add members with path \"members\"")
		}
		ids, ok := memberFilterIDs(t.filter, nil)
		if !ok {
			return scimerr.InvalidFilter("members can only be selected by value eq \"<id>\" (joined by or), got %s", t.filter.String())
		}
		a.addMemberOp(MemberRemove, dedupe(ids))
		return nil
	}
	switch {
	case kind == OpRemove && !hasValue:
		a.addMemberOp(MemberClear, nil)
		return nil
	case kind == OpReplace && (isEmptyValue(v) || isEmptyList(v)):
		a.addMemberOp(MemberClear, nil)
		return nil
	case kind == OpAdd && (isEmptyValue(v) || isEmptyList(v)):
		return nil // adding nobody
	}
	ids, displays, err := memberIDs(v)
	if err != nil {
		return err
	}
	if len(ids) > schema.MaxValues {
		return scimerr.InvalidValue("members value has %d entries; at most %d are accepted per operation", len(ids), schema.MaxValues)
	}
	switch kind {
	case OpAdd:
		a.addMemberOp(MemberAdd, ids, displays)
	case OpReplace:
		a.addMemberOp(MemberReplace, ids, displays)
	default:
		a.addMemberOp(MemberRemove, ids)
	}
	return nil
}

// addMemberOp records a member operation; displays, for add and replace,
// are the ones the request sent.
func (a *applier) addMemberOp(kind MemberOpKind, ids []string, displays ...map[string]string) {
	if len(ids) == 0 && kind != MemberClear {
		return
	}
	op := MemberOp{Kind: kind, IDs: ids}
	if len(displays) > 0 {
		op.Displays = displays[0]
	}
	a.members = append(a.members, op)
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// MemberNet is a request's member operations folded, in order, into their
// final outcome, the one decision both the repository's shards and the
// in-memory test store act on.
type MemberNet struct {
	// Want says, for each id the request names, whether it is a member
	// afterwards.
	Want map[string]bool
	// ReplaceAll says every member not in Want goes (a replace or clear).
	ReplaceAll bool
	// Display holds the display of the members whose display the request
	// decides: those it adds with a display, and every member of a
	// replace ("" = none). Members it adds without one keep theirs,
	// unless an earlier operation removed them.
	Display map[string]string
}

// Empty reports whether the operations change nothing.
func (n MemberNet) Empty() bool { return len(n.Want) == 0 && !n.ReplaceAll }

// FoldMembers folds ops into their net effect.
func FoldMembers(ops []MemberOp) MemberNet {
	n := MemberNet{Want: map[string]bool{}, Display: map[string]string{}}
	for _, op := range ops {
		switch op.Kind {
		case MemberAdd:
			for _, id := range op.IDs {
				was, named := n.Want[id]
				n.Want[id] = true
				if d, ok := op.Displays[id]; ok {
					n.Display[id] = d
				} else if (named && !was) || (n.ReplaceAll && !named) {
					// Removed by an earlier operation: it comes back
					// without the display it had.
					n.Display[id] = ""
				}
			}
		case MemberRemove:
			for _, id := range op.IDs {
				n.Want[id] = false
				delete(n.Display, id)
			}
		case MemberClear, MemberReplace:
			n = MemberNet{ReplaceAll: true, Want: map[string]bool{}, Display: map[string]string{}}
			for _, id := range op.IDs { // none for a clear
				n.Want[id], n.Display[id] = true, op.Displays[id]
			}
		}
	}
	return n
}
